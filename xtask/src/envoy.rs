//! Envoy as the edge: `envoy/envoy.yaml` rendered for a deployment
//! (`cargo xtask envoy-config`) or for this machine (`cargo xtask start`),
//! through the one renderer (`seckill_api::placeholders::render_envoy`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use seckill_api::placeholders::{EnvoySite, render_envoy};

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
    let yaml = render(&site)?;
    match args.output {
        Some(path) => std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display())),
        None => {
            print!("{yaml}");
            Ok(())
        }
    }
}

/// `envoy/envoy.yaml` filled for `site`.
pub fn render(site: &EnvoySite) -> anyhow::Result<String> {
    let template = root().join("envoy/envoy.yaml");
    let text = std::fs::read_to_string(&template).with_context(|| format!("reading {}", template.display()))?;
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
        let yaml = render(&site).unwrap();
        assert!(!yaml.contains("${"), "a placeholder was left unfilled");
        for expected in ["address: \"10.0.0.11\", port_value: 8081", "address: \"backend-2\", port_value: 8081"] {
            assert!(yaml.contains(expected), "{expected} missing");
        }
        assert!(yaml.contains("\"edge_secret\": \"edge-secret\""));
    }
}

//! Settings, from flags or the `SECKILL_*` environment (`CONTRACT.md`, "Processes").
//!
//! Secrets never get a silent default: outside dev mode a missing secret stops
//! start-up with an error that names it. In dev mode a missing secret is
//! generated at random and logged, so a demo works without pretending to be
//! production.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;

use crate::breaker::BreakerSettings;
use crate::store::{RedisTarget, ReplicasAck};

/// Command-line and environment settings of the backend process.
#[derive(Debug, Clone, Parser)]
#[command(name = "seckill-backend", version, about = "seckill backend: public API, admin API, metrics")]
pub struct Settings {
    /// Address the HTTP server listens on.
    #[arg(long, env = "SECKILL_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Redis: `redis://host:port/db`, `redis+sentinel://host:port[,host:port…]/<master name>[/<db>]`,
    /// or a comma-separated list of cluster node URLs.
    #[arg(long, env = "SECKILL_REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,

    /// Order database (`sqlite://…` or `mysql://…`); used by the order worker.
    #[arg(long, env = "SECKILL_DATABASE_URL", default_value = "sqlite://var/orders.db")]
    pub database_url: String,

    /// Connections the order DB pool holds at most (default: 4 on SQLite, 16 on MySQL).
    #[arg(long, env = "SECKILL_DATABASE_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool_size: Option<u32>,

    /// A MySQL/MariaDB read replica of the order DB: order lists, the
    /// dashboard's counts and the rules history are read there (`mysql://…`).
    #[arg(long, env = "SECKILL_DATABASE_REPLICA_URL")]
    pub database_replica_url: Option<String>,

    /// How far behind the replica may be before its reads go to the primary (ms).
    #[arg(long, env = "SECKILL_DATABASE_REPLICA_MAX_LAG_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub database_replica_max_lag_ms: u64,

    /// HS256 secret that buyers' JWTs are signed with.
    #[arg(long, env = "SECKILL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Password of the admin API.
    #[arg(long, env = "SECKILL_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Shared secret the edge presents to `/internal/edge/state`.
    #[arg(long, env = "SECKILL_EDGE_SECRET", hide_env_values = true)]
    pub edge_secret: Option<String>,

    /// A file holding `SECKILL_JWT_SECRET` (as container platforms mount secrets); not both.
    #[arg(long, env = "SECKILL_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<std::path::PathBuf>,

    /// A file holding `SECKILL_ADMIN_PASSWORD`; not both.
    #[arg(long, env = "SECKILL_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<std::path::PathBuf>,

    /// HMAC secret the payment provider signs its callbacks with
    /// (`POST /api/payments/callback`); without it callbacks are refused.
    #[arg(long, env = "SECKILL_PAYMENT_SECRET", hide_env_values = true)]
    pub payment_secret: Option<String>,

    /// A file holding `SECKILL_PAYMENT_SECRET`; not both.
    #[arg(long, env = "SECKILL_PAYMENT_SECRET_FILE")]
    pub payment_secret_file: Option<std::path::PathBuf>,

    /// A file holding `SECKILL_EDGE_SECRET`; not both.
    #[arg(long, env = "SECKILL_EDGE_SECRET_FILE")]
    pub edge_secret_file: Option<std::path::PathBuf>,

    /// Seconds an order may stay unpaid before it expires and its stock goes back.
    #[arg(long, env = "SECKILL_PAY_TIMEOUT_SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub pay_timeout_secs: u64,

    /// Seconds a purchase token stays valid.
    #[arg(long, env = "SECKILL_TOKEN_TTL_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl_secs: u64,

    /// Live purchase tokens allowed per unit of remaining stock.
    #[arg(long, env = "SECKILL_TOKEN_FACTOR", default_value_t = 1.5, value_parser = parse_factor)]
    pub token_factor: f64,

    /// Peers (IPs or CIDRs, comma-separated) whose `x-forwarded-for` is believed.
    #[arg(long, env = "SECKILL_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,

    /// How long a Redis call may take before the request fails with `unavailable`.
    #[arg(long, env = "SECKILL_REDIS_TIMEOUT_MS", default_value_t = 800)]
    pub redis_timeout_ms: u64,

    /// Replicas that must hold a purchase before its buyer hears 202 (`WAIT`);
    /// 0 turns it off. Default: 1 with Sentinel or a Cluster, 0 for one server.
    #[arg(long, env = "SECKILL_REDIS_REPLICAS_ACK")]
    pub redis_replicas_ack: Option<u32>,

    /// How long a purchase waits for its replicas before `unavailable` (ms);
    /// below `SECKILL_REDIS_TIMEOUT_MS`.
    #[arg(long, env = "SECKILL_REDIS_REPLICAS_ACK_TIMEOUT_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_replicas_ack_timeout_ms: u64,

    /// Dependency failures in a row (timeouts, refused connections) that open
    /// the circuit breaker of Redis or of the order DB: calls then fail at once.
    #[arg(long, env = "SECKILL_BREAKER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub breaker_failures: u32,

    /// How long an open breaker refuses calls before it lets one probe through (ms).
    #[arg(long, env = "SECKILL_BREAKER_OPEN_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub breaker_open_ms: u64,

    /// What this process runs: `all` (API and order worker), `api`, or `worker`.
    #[arg(long, env = "SECKILL_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,

    /// Pending order events idle this long are claimed from a dead worker (ms).
    #[arg(long, env = "SECKILL_CLAIM_IDLE_MS", default_value_t = 30_000)]
    pub claim_idle_ms: u64,

    /// How often unpaid orders past their deadline are expired (ms).
    #[arg(long, env = "SECKILL_SWEEP_INTERVAL_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub sweep_interval_ms: u64,

    /// How often every activity is reconciled in the background (seconds).
    #[arg(long, env = "SECKILL_RECONCILE_INTERVAL_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub reconcile_interval_secs: u64,

    /// Where the bench scripts keep their last results (`bench/lib.sh`).
    #[arg(long, env = "SECKILL_BENCH_DIR", default_value = "var/bench")]
    pub bench_dir: std::path::PathBuf,

    /// Directory of the built admin UI (`cargo xtask start` builds it there).
    #[arg(long, env = "SECKILL_ADMIN_UI_DIR", default_value = "target/admin-ui")]
    pub admin_ui_dir: std::path::PathBuf,

    /// The Prometheus that evaluates `deploy/prometheus/rules/` (`http://host:9090`):
    /// the checklist shows which seckill alerts it has loaded and which fire.
    #[arg(long, env = "SECKILL_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,

    /// Log lines as `text` (for people) or `json` (one object per line, for a
    /// collector such as Loki or Elasticsearch).
    #[arg(long, env = "SECKILL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Dev mode: generate missing secrets instead of refusing to start.
    #[arg(long, env = "SECKILL_DEV", value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which parts of seckill a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The HTTP API and the order worker (the default, one process does it all).
    All,
    /// Only the HTTP API.
    Api,
    /// Only the order worker, sweeper and reconciler (no HTTP listener).
    Worker,
}

impl Role {
    pub fn serves_http(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }

    pub fn runs_worker(self) -> bool {
        matches!(self, Self::All | Self::Worker)
    }
}

fn parse_factor(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !(1.0..=100.0).contains(&f) {
        return Err(format!("token factor must be between 1 and 100, got {f}"));
    }
    Ok(f)
}

/// The secrets, resolved: present, or generated in dev mode.
#[derive(Clone)]
pub struct Secrets {
    pub jwt: String,
    pub admin_password: String,
    pub edge: String,
    /// Payment callbacks are refused without one (never generated: a random
    /// secret nobody knows would only turn every callback away).
    pub payment: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

/// A start-up error that names the secret's setting and what is wrong with it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("{0} is not set; set it or {0}_FILE (or run with --dev / SECKILL_DEV=1 for generated development secrets)")]
    Missing(&'static str),
    #[error("both {0} and {0}_FILE are set; set one")]
    Both(&'static str),
    #[error("{name}_FILE: cannot read {path}: {why}")]
    Unreadable { name: &'static str, path: String, why: String },
    #[error("{name}_FILE: {path} is empty")]
    Empty { name: &'static str, path: String },
}

impl Settings {
    /// Resolves the secrets, each from its setting or from the file its
    /// `_FILE` setting names (one trailing newline dropped): every one must
    /// be set unless in dev mode.
    pub fn secrets(&self) -> Result<Secrets, SecretError> {
        let required =
            |value: &Option<String>, file: &Option<std::path::PathBuf>, name: &'static str| match given_secret(
                value, file, name,
            )? {
                Some(secret) => Ok(secret),
                None if self.dev => {
                    tracing::warn!(setting = name, "dev mode: generated a random secret");
                    Ok(random_secret())
                }
                None => Err(SecretError::Missing(name)),
            };
        Ok(Secrets {
            jwt: required(&self.jwt_secret, &self.jwt_secret_file, "SECKILL_JWT_SECRET")?,
            admin_password: required(&self.admin_password, &self.admin_password_file, "SECKILL_ADMIN_PASSWORD")?,
            edge: required(&self.edge_secret, &self.edge_secret_file, "SECKILL_EDGE_SECRET")?,
            payment: given_secret(&self.payment_secret, &self.payment_secret_file, "SECKILL_PAYMENT_SECRET")?,
        })
    }

    pub fn breaker(&self) -> BreakerSettings {
        BreakerSettings { failures: self.breaker_failures, open_ms: self.breaker_open_ms }
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// What purchases wait for ([`ReplicasAck`]), or why the settings do not fit.
    pub fn replicas_ack(&self) -> Result<Option<ReplicasAck>, String> {
        let fails_over = RedisTarget::parse(&self.redis_url).is_ok_and(|t| t.fails_over());
        let replicas = self.redis_replicas_ack.unwrap_or(u32::from(fails_over));
        if replicas == 0 {
            return Ok(None);
        }
        if self.redis_replicas_ack_timeout_ms >= self.redis_timeout_ms {
            return Err(format!(
                "SECKILL_REDIS_REPLICAS_ACK_TIMEOUT_MS ({}) must be below SECKILL_REDIS_TIMEOUT_MS ({}): \
                 a purchase must hear its replicas before its call times out",
                self.redis_replicas_ack_timeout_ms, self.redis_timeout_ms
            ));
        }
        Ok(Some(ReplicasAck { replicas, timeout_ms: self.redis_replicas_ack_timeout_ms }))
    }

    /// Issuance factor as the token script takes it: per mille of remaining stock.
    pub fn token_factor_per_mille(&self) -> u64 {
        (self.token_factor * 1000.0).round() as u64
    }
}

/// A secret from its setting or from the file its `_FILE` setting names
/// (one trailing newline dropped), if either is given.
fn given_secret(
    value: &Option<String>,
    file: &Option<std::path::PathBuf>,
    name: &'static str,
) -> Result<Option<String>, SecretError> {
    let value = value.as_deref().filter(|v| !v.is_empty());
    match (value, file) {
        (Some(_), Some(_)) => Err(SecretError::Both(name)),
        (Some(v), None) => Ok(Some(v.to_owned())),
        (None, Some(path)) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| SecretError::Unreadable {
                name,
                path: shown.clone(),
                why: e.to_string(),
            })?;
            let secret = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
            if secret.is_empty() {
                return Err(SecretError::Empty { name, path: shown });
            }
            Ok(Some(secret.to_owned()))
        }
        (None, None) => Ok(None),
    }
}

fn random_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Settings {
        let mut all = vec!["seckill-backend"];
        all.extend_from_slice(args);
        Settings::try_parse_from(all).unwrap()
    }

    #[test]
    fn missing_secret_is_an_error_outside_dev_mode() {
        let s = parse(&["--jwt-secret", "x", "--admin-password", "y"]);
        let err = s.secrets().unwrap_err();
        assert_eq!(err, SecretError::Missing("SECKILL_EDGE_SECRET"));
    }

    #[test]
    fn secrets_can_come_from_files_as_container_platforms_mount_them() {
        let dir = std::env::temp_dir().join(format!("seckill-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let (jwt, admin, empty) =
            (write("jwt", "s3cret\n"), write("admin", "pw with spaces \r\n"), write("empty", "\n"));
        let s = parse(&["--jwt-secret-file", &jwt, "--admin-password-file", &admin, "--edge-secret", "e"]);
        let secrets = s.secrets().unwrap();
        assert_eq!((secrets.jwt.as_str(), secrets.admin_password.as_str()), ("s3cret", "pw with spaces "));
        let both = parse(&["--jwt-secret", "x", "--jwt-secret-file", &jwt, "--dev"]).secrets().unwrap_err();
        assert_eq!(both, SecretError::Both("SECKILL_JWT_SECRET"));
        let empty = parse(&["--jwt-secret-file", &empty, "--dev"]).secrets().unwrap_err();
        assert!(matches!(empty, SecretError::Empty { name: "SECKILL_JWT_SECRET", .. }), "{empty}");
        let missing = parse(&["--jwt-secret-file", "/nonexistent/jwt", "--dev"]).secrets().unwrap_err();
        assert!(missing.to_string().starts_with("SECKILL_JWT_SECRET_FILE: cannot read /nonexistent/jwt"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dev_mode_generates_distinct_secrets() {
        let s = parse(&["--dev"]);
        let secrets = s.secrets().unwrap();
        assert_ne!(secrets.jwt, secrets.admin_password);
        assert_eq!(secrets.jwt.len(), 48);
    }

    #[test]
    fn replicas_ack_is_on_by_default_where_redis_fails_over() {
        let ack = |args: &[&str]| parse(args).replicas_ack();
        assert_eq!(ack(&["--redis-url", "redis://h:1/"]), Ok(None));
        let sentinel = ["--redis-url", "redis+sentinel://h:26379/m"];
        assert_eq!(ack(&sentinel), Ok(Some(ReplicasAck { replicas: 1, timeout_ms: 250 })));
        assert_eq!(ack(&["--redis-url", "redis://a:1/,redis://b:2/"]).unwrap().unwrap().replicas, 1);
        assert_eq!(ack(&[&sentinel[..], &["--redis-replicas-ack", "0"]].concat()), Ok(None));
        let on_one = ack(&["--redis-replicas-ack", "2", "--redis-replicas-ack-timeout-ms", "100"]);
        assert_eq!(on_one, Ok(Some(ReplicasAck { replicas: 2, timeout_ms: 100 })));
        let too_long = ack(&[&sentinel[..], &["--redis-replicas-ack-timeout-ms", "800"]].concat());
        assert!(too_long.unwrap_err().contains("below SECKILL_REDIS_TIMEOUT_MS"));
    }

    #[test]
    fn token_factor_is_bounded() {
        assert!(Settings::try_parse_from(["b", "--token-factor", "0.5"]).is_err());
        assert_eq!(parse(&["--token-factor", "1.5"]).token_factor_per_mille(), 1500);
    }
}

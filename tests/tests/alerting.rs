//! The checklist's 实时告警系统 against a real Prometheus (Debian's
//! `prometheus`) that scrapes a real backend and evaluates the shipped rules
//! (`deploy/prometheus/rules/seckill.rules.yml`): it shows the rules loaded,
//! a condition that holds (pending), and an alert that fires.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use seckill_tests::{ActivitySpec, Backend, RedisServer, TempDir, eventually, free_port, root};
use serde_json::Value;

/// A private Prometheus on a free port, scraping and evaluating every second.
struct Prometheus {
    child: Child,
    _dir: TempDir,
}

impl Prometheus {
    fn start(port: u16, backend: std::net::SocketAddr) -> Self {
        let dir = TempDir::new("prometheus");
        let rules = root().join("deploy/prometheus/rules/seckill.rules.yml");
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}']\n\
             scrape_configs:\n  - job_name: seckill-backend\n    static_configs: [{{targets: ['{backend}']}}]\n",
            rules.display()
        );
        let config_file = dir.0.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.0.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus (Debian's `prometheus` package; `cargo xtask test` installs it)");
        Self { child, _dir: dir }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn alerting(api: &Backend, admin: &str) -> Value {
    let (_, checklist) = api.get("/admin/api/checklist", admin).await;
    checklist.as_array().unwrap().iter().find(|i| i["id"] == "monitoring.alerting").unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checklist_shows_the_rules_prometheus_loaded_and_the_alerts_that_fire() {
    let redis = RedisServer::start().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let api =
        Backend::start_with(&redis.url(), &["--prometheus-url", &url, "--reconcile-interval-secs", "1"]).await.unwrap();
    let admin = api.admin_token().await;
    let item = alerting(&api, &admin).await;
    assert_eq!(item["status"], "failing", "no prometheus answers yet: {item}");
    assert!(item["evidence"].as_str().unwrap().contains(&url), "{item}");

    let _prometheus = Prometheus::start(port, api.addr);
    // One test Redis has no replica: that rule's condition holds at once (pending for its minute).
    let item = eventually(Duration::from_secs(60), "prometheus to load the rules and see no replica", || async {
        let item = alerting(&api, &admin).await;
        item["evidence"].as_str().unwrap().contains("pending: SeckillRedisWithoutReplica").then_some(item)
    })
    .await;
    assert_eq!(item["status"], "warning", "{item}");
    assert!(item["evidence"].as_str().unwrap().starts_with("10 seckill alert rules loaded"), "{item}");

    // A dead-lettered sale: the reconciler publishes it, and the alert fires without waiting.
    let a = api.create_activity(ActivitySpec::live(5, 1)).await;
    let mut r = redis.conn().await;
    let () = redis::cmd("XADD")
        .arg(seckill_backend::store::keys::dead_letters(a))
        .arg("*")
        .arg(&[("activity_id", a.to_string()), ("user_id", "lost".into()), ("dead_reason", "test".into())])
        .query_async(&mut r)
        .await
        .unwrap();
    let item = eventually(Duration::from_secs(60), "SeckillDeadLetters to fire", || async {
        let item = alerting(&api, &admin).await;
        item["evidence"].as_str().unwrap().contains("firing: SeckillDeadLetters").then_some(item)
    })
    .await;
    assert_eq!(item["status"], "failing", "{item}");
}

//! The monitoring kit under `deploy/` stays true to the code (#16, item 5):
//! `deploy/prometheus/prometheus.yml` (what to scrape), its alert rules
//! (`rules/seckill.rules.yml`) and their unit tests (`tests/seckill.test.yml`),
//! and the Grafana dashboard `deploy/grafana/seckill.json`. Nothing else runs
//! them before the day they are needed, and a metric renamed in the code
//! silently empties a panel or an alert: `cargo test -p seckill-tests --test
//! deploy_rules`.
//!
//! `promtool` (Debian's `prometheus` package; `cargo xtask test` installs it)
//! checks the config and the rules and runs the rules' unit tests; this file
//! adds that every alert the issue asks for exists and has a unit test that
//! fires it, and that every `seckill_*` metric the rules and the dashboard
//! query is one the backend, the edge filter or the edge host exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

const CONFIG: &str = "deploy/prometheus/prometheus.yml";
const RULES: &str = "deploy/prometheus/rules/seckill.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/tests/seckill.test.yml";
const DASHBOARD: &str = "deploy/grafana/seckill.json";

/// The alerts #16 item 5 asks for; each must fire in [`RULE_TESTS`].
const REQUIRED_ALERTS: &[&str] = &[
    "SeckillBackendDown",
    "SeckillStockDrainingFast",
    "SeckillStreamLag",
    "SeckillDeadLetters",
    "SeckillReconciliationDrift",
    "SeckillEdgeStateStale",
    "SeckillBreakerOpen",
    "SeckillLatencyP99",
    "SeckillRedisWithoutReplica",
    "SeckillDegraded",
];

/// Where the exported metrics are named: the backend, the edge filter (its
/// metrics reach Prometheus through Envoy or seckill-edge) and the edge host.
const SOURCES: &[&str] = &["backend/src", "edge-filter/src", "edge-host/src"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Yaml {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `promtool <args>` in the workspace root and fails with its output
/// unless it succeeds.
fn promtool(args: &[&str]) {
    let out = match Command::new("promtool").args(args).current_dir(root()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed: it is in Debian's `prometheus` package \
             (apt-get install --no-install-recommends prometheus; `cargo xtask test` installs it)"
        ),
        Err(e) => panic!("running promtool: {e}"),
    };
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_config_the_rules_and_their_unit_tests() {
    promtool(&["check", "config", CONFIG]);
    promtool(&["check", "rules", RULES]);
    promtool(&["test", "rules", RULE_TESTS]);
}

/// The alerting rules of the rules file.
fn alert_rules() -> Vec<Yaml> {
    let rules = yaml(RULES);
    let groups = rules["groups"].as_sequence().expect("the rules file has groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

#[test]
fn every_required_alert_exists_and_a_unit_test_fires_it() {
    let rules = alert_rules();
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for name in REQUIRED_ALERTS {
        assert!(names.contains(name), "{RULES} has no alert {name}");
    }
    for rule in &rules {
        let name = rule["alert"].as_str().unwrap_or("?");
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("critical" | "warning" | "info")),
            "{name}: severity label {severity:?}, not critical, warning or info"
        );
        for annotation in ["summary", "description"] {
            let text = rule["annotations"][annotation].as_str().unwrap_or("");
            assert!(!text.trim().is_empty(), "{name} has no {annotation} annotation");
        }
    }
    // An alert fires in a unit test when some evaluation expects it firing.
    let tests = yaml(RULE_TESTS);
    let fired: BTreeSet<&str> = tests["tests"]
        .as_sequence()
        .expect("the unit test file has tests")
        .iter()
        .filter_map(|t| t["alert_rule_test"].as_sequence())
        .flatten()
        .filter(|case| case["exp_alerts"].as_sequence().is_some_and(|alerts| !alerts.is_empty()))
        .filter_map(|case| case["alertname"].as_str())
        .collect();
    let unfired: Vec<&str> = names.iter().copied().filter(|n| !fired.contains(n)).collect();
    assert!(unfired.is_empty(), "no unit test in {RULE_TESTS} makes these alerts fire: {unfired:?}");
}

/// Every `seckill_…` name in `text` (a name starts after a character that
/// cannot be part of one).
fn metric_names(text: &str) -> Vec<&str> {
    let is_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut names = Vec::new();
    for (at, _) in text.match_indices("seckill_") {
        if text[..at].chars().next_back().is_some_and(|c| is_name(c) || c.is_ascii_uppercase()) {
            continue;
        }
        let len = text[at..].find(|c: char| !is_name(c)).unwrap_or(text.len() - at);
        names.push(&text[at..at + len]);
    }
    names
}

/// Every metric name the code spells as a string literal (`"seckill_…`).
fn exported_metrics() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices("\"seckill_") {
                    out.extend(metric_names(&text[at + 1..]).first().map(|n| n.to_string()));
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for dir in SOURCES {
        walk(&root().join(dir), &mut out);
    }
    out
}

/// The names in `used` that are neither exported (a histogram's `_bucket`,
/// `_sum` and `_count` series count as the histogram).
fn unknown_metrics<'a>(used: impl IntoIterator<Item = &'a str>, exported: &BTreeSet<String>) -> BTreeSet<String> {
    let known = |name: &str| {
        exported.contains(name)
            || ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s).is_some_and(|h| exported.contains(h)))
    };
    used.into_iter().filter(|n| !known(n)).map(str::to_owned).collect()
}

/// The query text of the dashboard: every string under an `expr`, `query` or
/// `definition` key (panel targets and the template variables).
fn dashboard_queries<'a>(value: &'a Json, key: Option<&str>, out: &mut Vec<&'a str>) {
    match value {
        Json::String(s) if matches!(key, Some("expr" | "query" | "definition")) => out.push(s),
        Json::Array(items) => items.iter().for_each(|v| dashboard_queries(v, key, out)),
        Json::Object(map) => map.iter().for_each(|(k, v)| dashboard_queries(v, Some(k), out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_parses_and_queries_only_exported_metrics() {
    let dashboard: Json = serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    let panels = dashboard["panels"].as_array().expect("the dashboard has panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        assert!(ids.insert(panel["id"].as_u64()), "{DASHBOARD}: panel id of {title:?} used twice");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{DASHBOARD}: datasource of {title:?}");
        let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert!(
            !targets.is_empty() && targets.iter().all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
            "{DASHBOARD}: panel {title:?} has a target without a query"
        );
    }
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, None, &mut queries);
    let used: Vec<&str> = queries.iter().flat_map(|q| metric_names(q)).collect();
    assert!(!used.is_empty(), "{DASHBOARD}: no seckill_ metric in its queries");

    let exported = exported_metrics();
    let unknown = unknown_metrics(used, &exported);
    assert!(unknown.is_empty(), "{DASHBOARD} queries metrics the code does not export: {unknown:?}");

    let rules = alert_rules();
    let rule_used: Vec<&str> = rules.iter().filter_map(|r| r["expr"].as_str()).flat_map(metric_names).collect();
    let unknown = unknown_metrics(rule_used, &exported);
    assert!(unknown.is_empty(), "{RULES} queries metrics the code does not export: {unknown:?}");
}

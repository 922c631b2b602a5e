//! What the Prometheus watching this system says about it: which of
//! seckill's alert rules it has loaded (`deploy/prometheus/rules/`) and
//! which are pending or firing now, from its HTTP API (`/api/v1/rules`). The
//! checklist's 实时告警系统 shows it: alert rules nobody loaded, or an alert
//! nobody looked at, are what an operator needs to know before a sale.

use std::time::Duration;

use serde::Deserialize;

/// Seckill's alert rules as Prometheus holds them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertRules {
    /// Names of the loaded rules whose name starts with `Seckill`.
    pub loaded: Vec<String>,
    /// Rules whose condition holds, not yet for their `for:` time.
    pub pending: Vec<String>,
    pub firing: Vec<String>,
}

/// Why Prometheus could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("prometheus at {url}: {why}")]
pub struct PrometheusError {
    url: String,
    why: String,
}

#[derive(Deserialize)]
struct RulesAnswer {
    data: RulesData,
}

#[derive(Deserialize)]
struct RulesData {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    name: String,
    #[serde(default)]
    state: String,
}

/// Asks the Prometheus at `base_url` (e.g. `http://127.0.0.1:9090`) for its alert rules.
pub async fn alert_rules(base_url: &str) -> Result<AlertRules, PrometheusError> {
    let url = format!("{}/api/v1/rules?type=alert", base_url.trim_end_matches('/'));
    let fail = |why: String| PrometheusError { url: base_url.to_owned(), why };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().map_err(|e| fail(e.to_string()))?;
    let answer = client.get(&url).send().await.map_err(|e| fail(e.to_string()))?;
    if !answer.status().is_success() {
        return Err(fail(format!("answered {}", answer.status())));
    }
    let rules: RulesAnswer = answer.json().await.map_err(|e| fail(format!("not a rules answer: {e}")))?;
    let mut out = AlertRules::default();
    for rule in rules.data.groups.into_iter().flat_map(|g| g.rules).filter(|r| r.name.starts_with("Seckill")) {
        match rule.state.as_str() {
            "firing" => out.firing.push(rule.name.clone()),
            "pending" => out.pending.push(rule.name.clone()),
            _ => {}
        }
        out.loaded.push(rule.name);
    }
    for list in [&mut out.loaded, &mut out.pending, &mut out.firing] {
        list.sort();
        list.dedup();
    }
    Ok(out)
}

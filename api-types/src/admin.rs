//! The operators' session, lists, blacklist and the seed's checklist.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One page of a list that can grow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Body of `POST /admin/api/login`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub password: String,
}

/// Answer of `POST /admin/api/login`: the admin bearer token (also set as a cookie).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminSession {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A blacklisted user id or IP/CIDR, as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlacklistEntry {
    pub value: String,
    /// When the entry reached the edge: the first edge sync that confirmed
    /// (in its `if-none-match`) that the edge applied a state holding it.
    /// `null` while no edge has.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub reached_edge_at: Option<OffsetDateTime>,
}

/// How an item of the production checklist stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Warning,
    Failing,
    /// Not probeable: an operator ticks it, with a note.
    Manual,
}

impl CheckStatus {
    pub const ALL: [CheckStatus; 4] =
        [CheckStatus::Ok, CheckStatus::Warning, CheckStatus::Failing, CheckStatus::Manual];

    /// The status as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Failing => "failing",
            Self::Manual => "manual",
        }
    }
}

/// One item of the seed's production checklist (秒杀系统性能优化检查清单).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// Stable id, e.g. `infra.redis_persistence`.
    pub id: String,
    /// Group id: `infrastructure`, `code`, `security`, `monitoring`, `disaster_recovery`.
    pub group: String,
    pub title_zh: String,
    pub title_en: String,
    pub status: CheckStatus,
    /// What the probe saw, or the operator's note.
    pub evidence: String,
    /// Whether an operator ticked it (manual items only).
    pub ticked: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ticked_at: Option<OffsetDateTime>,
}

/// Body of `PUT /admin/api/checklist`: tick or untick one manual item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistTick {
    pub id: String,
    pub ticked: bool,
    #[serde(default)]
    pub note: String,
}

/// The token step's proof of work (`GET|PUT /admin/api/anti-bot`): 0 is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntiBot {
    pub pow_bits: u32,
}

/// A benchmark script's last run (`GET /admin/api/benchmarks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// The script: `compare`, `edge`, `cluster`.
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub ran_at: OffsetDateTime,
    /// Its `PASS …` and `FAIL …` lines, one per speed goal.
    pub verdicts: Vec<String>,
    /// The whole summary it printed (markdown).
    pub summary: String,
}

//! The `edge_rules` table: every saved version of the edge's rules, so they
//! survive restarts and keep a history; the newest is the one in force.

use seckill_api::EdgeRules;
use sqlx::Row;

use super::pool::Db;

/// A stored version of the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRules {
    pub version: i64,
    pub rules: EdgeRules,
    pub created_at_ms: i64,
}

/// What saving rules did.
#[derive(Debug, Clone, PartialEq)]
pub enum RulesSave {
    Saved(StoredRules),
    /// Someone saved in between: `current` is the version in force now.
    Conflict {
        current: i64,
    },
}

impl Db {
    /// The rules in force: the newest version, or the defaults as version 0.
    pub async fn current_rules(&self) -> Result<StoredRules, sqlx::Error> {
        self.guarded(async move {
            let row =
                sqlx::query("SELECT version, rules_json, created_at_ms FROM edge_rules ORDER BY version DESC LIMIT 1")
                    .fetch_optional(self.pool())
                    .await?;
            match row {
                Some(r) => stored(&r),
                None => Ok(StoredRules { version: 0, rules: EdgeRules::default(), created_at_ms: 0 }),
            }
        })
        .await
    }

    /// Stores `rules` as the next version, unless `expected` is given and is
    /// no longer the current version (someone else saved in between).
    pub async fn save_rules(&self, rules: &EdgeRules, expected: Option<i64>) -> Result<RulesSave, sqlx::Error> {
        self.guarded(async move {
            let json = serde_json::to_string(rules).expect("rules serialise");
            for _ in 0..5 {
                let current = self.current_rules().await?.version;
                if expected.is_some_and(|e| e != current) {
                    return Ok(RulesSave::Conflict { current });
                }
                let now = crate::clock::now_ms();
                let inserted =
                    sqlx::query("INSERT INTO edge_rules (version, rules_json, created_at_ms) VALUES (?, ?, ?)")
                        .bind(current + 1)
                        .bind(&json)
                        .bind(now)
                        .execute(self.pool())
                        .await;
                match inserted {
                    Ok(_) => {
                        let saved = StoredRules { version: current + 1, rules: rules.clone(), created_at_ms: now };
                        return Ok(RulesSave::Saved(saved));
                    }
                    // Another writer took this version number: read again and retry.
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(sqlx::Error::Protocol("edge rules: too many concurrent saves".into()))
        })
        .await
    }

    /// Versions older than `before` (or the newest), newest first.
    pub async fn rules_history(&self, before: Option<i64>, limit: usize) -> Result<Vec<StoredRules>, sqlx::Error> {
        self.read_replica(|pool| async move {
            let rows = sqlx::query(
                "SELECT version, rules_json, created_at_ms FROM edge_rules WHERE version < ? ORDER BY version DESC LIMIT ?",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit as i64)
            .fetch_all(&pool)
            .await?;
            rows.iter().map(stored).collect()
        })
        .await
    }
}

fn stored(r: &sqlx::any::AnyRow) -> Result<StoredRules, sqlx::Error> {
    let json = super::pool::text_column(r, "rules_json")?;
    Ok(StoredRules {
        version: r.try_get("version")?,
        rules: serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

//! The mirror of the edge rules in force (`seckill:edge:rules`): the order DB
//! keeps their history, Redis the version the edge state is built from.

use std::collections::HashMap;

use super::client::{Store, StoreError, parse_int};
use super::keys;

impl Store {
    /// Mirrors edge rules `version` as the version in force, unless a newer one
    /// already is; true if it published.
    pub async fn publish_rules(&self, version: i64, rules_json: &str, created_at_ms: i64) -> Result<bool, StoreError> {
        let (scripts, rules_json) = (self.scripts.clone(), rules_json.to_owned());
        let published: i64 = self
            .bounded(|mut c| async move {
                scripts
                    .publish_rules
                    .key(keys::EDGE_RULES)
                    .arg(version)
                    .arg(&rules_json)
                    .arg(created_at_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(published == 1)
    }

    /// The mirrored rules in force: `(version, rules JSON, created at ms)`, if any were published.
    pub async fn published_rules(&self) -> Result<Option<(i64, String, i64)>, StoreError> {
        let fields: HashMap<String, String> = self.hgetall(keys::EDGE_RULES).await?;
        let (Some(v), Some(json), Some(at)) =
            (fields.get("version"), fields.get("rules_json"), fields.get("created_at_ms"))
        else {
            return Ok(None);
        };
        Ok(Some((parse_int(v)?, json.clone(), parse_int(at)?)))
    }
}

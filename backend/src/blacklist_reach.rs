//! When each blacklist entry reached the edge: the time of the first sync in
//! which an (identified) edge confirmed that it applied a state holding the
//! entry.
//!
//! An operator blacklists someone to stop them now, and the edge is what
//! stops them; so the dashboard shows, for every entry, whether the edge has
//! it yet. The times live in Redis (a hash of entry → ms), so they outlast
//! the backend and every backend sees the same ones.
//!
//! Being served a state is not applying it: the edge checks it, then stores
//! it in its shared memory, and either can fail (a full store, a bad body).
//! What the edge holds it names in its next sync's `if-none-match` (the
//! version of the state it applied, never one it only received). So a state
//! version's blacklist counts as reached when an edge names that version
//! (`edge::record_served` remembers, for a day, which blacklist version each
//! state served was read at), and the entries stamped are the current ones when that
//! blacklist version is still the current one (stamping an older blacklist
//! exactly would need its entries; the next confirming sync stamps them).
//!
//! Every confirmed sync carries the whole current blacklist, so stamping is a
//! pass over the entries that lack a time (`HSETNX`: the first confirmation
//! wins). The pass runs once per blacklist version (the counter every change
//! bumps), so a steady system pays one `GET` per sync. An entry added anew
//! first loses any time an earlier life of it had.

use crate::clock::now_ms;
use crate::store::keys::{BLACKLIST_REACHED_EDGE, BLACKLIST_REACHED_EDGE_VERSION};

use crate::store::{BlacklistKind, Store, StoreError};

/// The field of an entry in the hash of times.
pub fn field(kind: BlacklistKind, value: &str) -> String {
    match kind {
        BlacklistKind::Users => format!("user:{value}"),
        BlacklistKind::Ips => format!("ip:{value}"),
    }
}

/// An edge confirmed it applied a state read at blacklist `version`, which
/// is the current one (`users`, `ips`): stamps those entries that have no
/// time yet with now.
pub async fn record_applied(store: &Store, version: i64, users: &[String], ips: &[String]) -> Result<(), StoreError> {
    let stamped: Option<i64> = store
        .bounded(|mut c| async move { redis::cmd("GET").arg(BLACKLIST_REACHED_EDGE_VERSION).query_async(&mut c).await })
        .await?;
    if stamped == Some(version) {
        return Ok(());
    }
    let fields: Vec<String> = users
        .iter()
        .map(|u| field(BlacklistKind::Users, u))
        .chain(ips.iter().map(|ip| field(BlacklistKind::Ips, ip)))
        .collect();
    let missing = unstamped(store, &fields).await?;
    let now = now_ms();
    store
        .bounded(|mut c| async move {
            let mut pipe = redis::pipe();
            for f in &missing {
                pipe.cmd("HSETNX").arg(BLACKLIST_REACHED_EDGE).arg(f).arg(now).ignore();
            }
            pipe.cmd("SET").arg(BLACKLIST_REACHED_EDGE_VERSION).arg(version).ignore();
            pipe.query_async::<()>(&mut c).await
        })
        .await
}

/// The fields among `fields` without a time.
async fn unstamped(store: &Store, fields: &[String]) -> Result<Vec<String>, StoreError> {
    let mut missing = Vec::new();
    // HMGET in slices, so that a huge blacklist does not make one huge reply.
    for chunk in fields.chunks(1000) {
        let times = hmget(store, chunk).await?;
        missing.extend(chunk.iter().zip(times).filter(|(_, t)| t.is_none()).map(|(f, _)| f.clone()));
    }
    Ok(missing)
}

async fn hmget(store: &Store, fields: &[String]) -> Result<Vec<Option<i64>>, StoreError> {
    if fields.is_empty() {
        return Ok(Vec::new());
    }
    store
        .bounded(|mut c| async move {
            redis::cmd("HMGET").arg(BLACKLIST_REACHED_EDGE).arg(fields).query_async(&mut c).await
        })
        .await
}

/// When each of `values` reached the edge (`None`: not yet), in their order.
pub async fn reached_at(store: &Store, kind: BlacklistKind, values: &[String]) -> Result<Vec<Option<i64>>, StoreError> {
    let fields: Vec<String> = values.iter().map(|v| field(kind, v)).collect();
    hmget(store, &fields).await
}

/// Forgets an entry's time: it is new again (added after a removal) or gone.
pub async fn forget(store: &Store, kind: BlacklistKind, value: &str) -> Result<(), StoreError> {
    store.hdel(BLACKLIST_REACHED_EDGE, &field(kind, value)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_the_list_and_keep_ipv6_whole() {
        assert_eq!(field(BlacklistKind::Users, "bob"), "user:bob");
        assert_eq!(field(BlacklistKind::Ips, "2001:db8::/32"), "ip:2001:db8::/32");
    }
}

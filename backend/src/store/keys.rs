//! Every Redis key name, in one place (`CONTRACT.md`, "Redis keys").
//!
//! Keys of one activity carry its id as a hash tag (`{A}`), so that each
//! script touches one Redis Cluster slot; the scripts receive every key in
//! KEYS and never build one themselves.

pub const BLACKLIST_USERS: &str = "seckill:blacklist:users";
pub const BLACKLIST_IPS: &str = "seckill:blacklist:ips";
/// Bumped on every blacklist change, so that readers reload only when it moved.
pub const BLACKLIST_VERSION: &str = "seckill:blacklist:version";
/// Hash: `user:<id>` / `ip:<ip or cidr>` → ms of the first edge sync serving
/// the entry (`blacklist_reach`).
pub const BLACKLIST_REACHED_EDGE: &str = "seckill:blacklist:reached_edge";
/// The blacklist version whose entries all have their edge time already.
pub const BLACKLIST_REACHED_EDGE_VERSION: &str = "seckill:blacklist:reached_edge_version";
/// The key admin sessions are signed with (random, created once; `admin_session`).
pub const ADMIN_SESSION_KEY: &str = "seckill:admin:session_key";
/// Bumped to end every admin session issued before.
pub const ADMIN_SESSION_EPOCH: &str = "seckill:admin:session_epoch";
/// Sorted set: revoked admin session id → its expiry (ms).
pub const ADMIN_REVOKED_SESSIONS: &str = "seckill:admin:revoked_sessions";
/// Failed admin logins from everywhere in the current window.
pub const ADMIN_LOGIN_FAILURES: &str = "seckill:admin:login_failures";
/// Failed admin logins from one client address in the current window.
pub fn admin_login_failures_ip(ip: &str) -> String {
    format!("seckill:admin:login_failures:ip:{ip}")
}
/// Hash: the edge rules in force (`version`, `rules_json`, `created_at_ms`),
/// mirrored from the order DB so that the edge's state needs Redis alone.
pub const EDGE_RULES: &str = "seckill:edge:rules";
/// Hash: edge id → `{version, rules_version, at_ms}` of its last sync.
pub const EDGE_SYNCS: &str = "seckill:edge:syncs";
/// `{rules_version, blacklist_version}` a state served to the edge as
/// `state_version` was built from, kept for a day, so that an edge naming
/// that version later (it holds it) is known to run those rules and that
/// blacklist (`edge::record_served`).
pub fn edge_served(state_version: &str) -> String {
    format!("seckill:edge:served:{state_version}")
}
/// Hash: `reason`, `since_ms` while degraded mode is on (absent while off).
pub const DEGRADED: &str = "seckill:degraded";
/// Hash: `pow_bits`, the proof of work the token step asks (`anti_bot`).
pub const ANTI_BOT: &str = "seckill:anti_bot";
/// Hash: `at_ms`, `dir`, `ok` of the last finished `cargo xtask backup`.
pub const BACKUP_LAST: &str = "seckill:backup:last";
/// Hash: API backend name → ms of its last heartbeat (`instances`).
pub const BACKENDS: &str = "seckill:backends";
/// Sorted set of activity ids: the index `GET /api/activities` walks.
pub const ACTIVITIES: &str = "seckill:activities";
/// Source of activity ids.
pub const ACTIVITY_SEQ: &str = "seckill:activity_seq";
/// Consumer group that applies every activity's payment callbacks.
pub const PAYMENT_GROUP: &str = "payment-appliers";
/// Consumer group that the order worker reads every order stream with.
pub const ORDER_GROUP: &str = "order-writers";

pub fn activity(a: u64) -> String {
    format!("seckill:activity:{{{a}}}")
}
pub fn inventory(a: u64) -> String {
    format!("seckill:inventory:{{{a}}}")
}
pub fn sold(a: u64) -> String {
    format!("seckill:sold:{{{a}}}")
}
/// Hash: user → what that user bought in the activity. One hash per activity
/// (which `CONTRACT.md` allows) so that its one expiry follows the activity's end.
pub fn user_limits(a: u64) -> String {
    format!("seckill:user_limit:{{{a}}}")
}
/// Hash: user → that user's order ids in the activity, comma-separated, oldest first.
pub fn user_orders(a: u64) -> String {
    format!("seckill:user_order:{{{a}}}")
}
/// Hash: user → `"<token>:<expires ms>"`, the user's latest token (`lua/token.lua`).
pub fn user_tokens(a: u64) -> String {
    format!("seckill:user_token:{{{a}}}")
}
/// Hash: token → `"<user>:<expires ms>"` while live, `"<user>:<until ms>:<order id>"`
/// once used (`lua/purchase.lua`). Redis 7.0 has no expiry per field: the
/// scripts check the one in the value.
pub fn tokens(a: u64) -> String {
    format!("seckill:token:{{{a}}}")
}
/// The keys of one buyer and one token before they became fields of the
/// hashes above. A deployment upgraded mid-activity still holds some (each
/// with its own TTL, so they go by themselves): the scripts read the tokens
/// (`purchase.lua`'s legacy calls, `token.lua`), and
/// [`Store::user_order_ids`](super::Store::user_order_ids) reads a buyer's
/// old order list before the new one.
pub mod legacy {
    pub fn user_token(a: u64, user: &str) -> String {
        format!("seckill:user_token:{{{a}}}:{user}")
    }
    pub fn token(a: u64, token: &str) -> String {
        format!("seckill:token:{{{a}}}:{token}")
    }
    pub fn user_order(a: u64, user: &str) -> String {
        format!("seckill:user_order:{{{a}}}:{user}")
    }
}
pub fn order_stream(a: u64) -> String {
    format!("queue:seckill_order:{{{a}}}")
}
/// Payment callbacks of activity `a`'s orders (`CONTRACT.md`).
pub fn payment_stream(a: u64) -> String {
    format!("queue:seckill_payment:{{{a}}}")
}
/// Where order events that cannot become rows go, with the reason, for operators.
pub fn dead_letters(a: u64) -> String {
    format!("queue:seckill_order_dead:{{{a}}}")
}
/// Held while an operator's action (replay, refund) settles one dead letter.
pub fn dead_letter_lock(a: u64, id: &str) -> String {
    format!("seckill:dead_letter_lock:{{{a}}}:{id}")
}
pub fn live_tokens(a: u64) -> String {
    format!("seckill:live_tokens:{{{a}}}")
}
pub fn released(a: u64) -> String {
    format!("seckill:released:{{{a}}}")
}

/// The order id of stream entry `event_id` of activity `a` (the purchase
/// script builds the same string): `"<a>-<event id>"`.
pub fn order_id(a: u64, event_id: &str) -> String {
    format!("{a}-{event_id}")
}

/// Splits an order id into its activity and its stream entry id.
pub fn parse_order_id(order_id: &str) -> Option<(u64, &str)> {
    let (a, event) = order_id.split_once('-')?;
    let (ms, seq) = event.split_once('-')?;
    let valid = !ms.is_empty() && !seq.is_empty() && (ms.bytes().chain(seq.bytes())).all(|b| b.is_ascii_digit());
    valid.then_some((a.parse().ok()?, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_name_their_event() {
        assert_eq!(order_id(42, "1764083707629-0"), "42-1764083707629-0");
        assert_eq!(parse_order_id("42-1764083707629-0"), Some((42, "1764083707629-0")));
        for bad in ["42", "42-17", "x-1-0", "42-1-0-0", "42--0", "-1-0", "42-1-a"] {
            assert_eq!(parse_order_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn activity_keys_share_one_hash_tag() {
        for key in [inventory(7), sold(7), user_limits(7), user_orders(7), tokens(7), user_tokens(7), order_stream(7)] {
            assert!(key.contains("{7}"), "{key} lacks the hash tag");
        }
        assert_eq!(inventory(42), "seckill:inventory:{42}");
        assert_eq!(tokens(42), "seckill:token:{42}");
        assert_eq!(legacy::user_token(42, "bob"), "seckill:user_token:{42}:bob");
    }
}

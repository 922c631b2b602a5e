//! Every Redis key name, in one place (`CONTRACT.md`, "Redis keys").
//!
//! Keys of one activity carry its id as a hash tag (`{A}`), so that each
//! script touches one Redis Cluster slot; the scripts receive every key in
//! KEYS and never build one themselves.

pub const BLACKLIST_USERS: &str = "seckill:blacklist:users";
pub const BLACKLIST_IPS: &str = "seckill:blacklist:ips";
/// Bumped on every blacklist change, so that readers reload only when it moved.
pub const BLACKLIST_VERSION: &str = "seckill:blacklist:version";
/// Sorted set of activity ids: the index `GET /api/activities` walks.
pub const ACTIVITIES: &str = "seckill:activities";
/// Source of activity ids.
pub const ACTIVITY_SEQ: &str = "seckill:activity_seq";
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
pub fn user_limit(a: u64, user: &str) -> String {
    format!("seckill:user_limit:{{{a}}}:{user}")
}
pub fn user_token(a: u64, user: &str) -> String {
    format!("seckill:user_token:{{{a}}}:{user}")
}
pub fn token(a: u64, token: &str) -> String {
    format!("seckill:token:{{{a}}}:{token}")
}
pub fn user_order(a: u64, user: &str) -> String {
    format!("seckill:user_order:{{{a}}}:{user}")
}
pub fn order_stream(a: u64) -> String {
    format!("queue:seckill_order:{{{a}}}")
}
pub fn live_tokens(a: u64) -> String {
    format!("seckill:live_tokens:{{{a}}}")
}
pub fn released(a: u64) -> String {
    format!("seckill:released:{{{a}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_keys_share_one_hash_tag() {
        for key in [
            inventory(7),
            sold(7),
            user_limit(7, "u"),
            token(7, "t"),
            order_stream(7),
        ] {
            assert!(key.contains("{7}"), "{key} lacks the hash tag");
        }
        assert_eq!(inventory(42), "seckill:inventory:{42}");
        assert_eq!(user_token(42, "bob"), "seckill:user_token:{42}:bob");
    }
}

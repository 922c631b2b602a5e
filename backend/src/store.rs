//! The Redis side of seckill: connections, the Lua scripts, and the few plain
//! commands around them.
//!
//! Every call is bounded by a timeout, so that a Redis that is down or stuck
//! turns into a fast error (`unavailable`) instead of a hanging request; the
//! connection manager reconnects by itself, so sales resume when Redis is back.
//! Script outcomes are values (`Rejection`, `PurchaseOutcome`, …), not errors:
//! a sold-out answer is a normal result of a sale, not a failure of the store.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use crate::keys;

/// The purchase script and its companions, hashed once; `invoke_async` sends
/// EVALSHA and falls back to loading the script when Redis answers NOSCRIPT.
pub struct Scripts {
    pub token: Script,
    pub purchase: Script,
    pub release: Script,
    pub restock: Script,
    pub delete_activity: Script,
    pub publish_rules: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            token: Script::new(include_str!("../../lua/token.lua")),
            purchase: Script::new(include_str!("../../lua/purchase.lua")),
            release: Script::new(include_str!("../../lua/release.lua")),
            restock: Script::new(include_str!("../../lua/restock.lua")),
            delete_activity: Script::new(include_str!("../../lua/delete_activity.lua")),
            publish_rules: Script::new(include_str!("../../lua/publish_rules.lua")),
        }
    }
}

/// What went wrong talking to Redis (as opposed to what Redis decided).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    #[error("unsupported redis url: {0}")]
    Url(String),
}

/// One Redis server, or a Redis Cluster; both reconnect by themselves.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Why a script said no. Each maps onto one error code of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NotFound,
    NotStarted,
    Ended,
    SoldOut,
    LimitExceeded,
    /// Live tokens already cover the remaining stock; one frees up in `retry_after_ms`.
    TokensExhausted {
        retry_after_ms: u64,
    },
    InvalidToken(String),
    BadQuantity,
    /// The backend passed something the script refuses: a bug, not the buyer's fault.
    BadArg(String),
}

/// Result of the token script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOutcome {
    Issued { token: String, expires_at_ms: i64 },
    Rejected(Rejection),
}

/// A sale the purchase script made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    pub order_id: String,
    pub remaining: i64,
    pub sold: i64,
    pub created_at_ms: i64,
    pub pay_deadline_ms: i64,
    pub amount_cents: i64,
}

/// Result of the purchase script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseOutcome {
    Accepted(Sale),
    /// The token was already used: here is the order it made.
    Replay {
        order_id: String,
    },
    Rejected(Rejection),
}

/// Result of the delete script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// Units are sold: the activity is ended (PATCH `ends_at`), never deleted.
    Sold(i64),
    /// Order events are still in its stream or dead-lettered.
    OrdersWaiting(i64),
}

/// Result of the release script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    Released {
        remaining: i64,
        sold: i64,
    },
    AlreadyReleased,
    /// `sold` is smaller than the order's quantity; nothing was changed.
    OverRelease,
    Rejected(Rejection),
}

/// A purchase as the backend hands it to the purchase script.
#[derive(Debug, Clone)]
pub struct PurchaseRequest<'a> {
    pub activity: u64,
    pub user: &'a str,
    pub token: &'a str,
    /// The quantity exactly as the client sent it; the script validates it again.
    pub quantity: &'a str,
    pub now_ms: i64,
    pub pay_timeout_ms: u64,
}

/// One buyer's part of a purchase batch (all of one activity).
#[derive(Debug, Clone)]
pub struct Purchase {
    pub user: String,
    pub token: String,
    /// The quantity exactly as the client sent it; the script validates it again.
    pub quantity: String,
    pub now_ms: i64,
}

/// An activity as stored in its Redis hash plus its two counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRecord {
    pub id: u64,
    pub name: String,
    pub price_cents: i64,
    pub total_stock: i64,
    pub limit_per_user: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub remaining: i64,
    pub sold: i64,
}

/// Live counters of one activity, for the stats route and the gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    pub remaining: i64,
    pub sold: i64,
    pub live_tokens: i64,
    pub stream_length: i64,
}

/// Which blacklist set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlacklistKind {
    Users,
    Ips,
}

impl BlacklistKind {
    fn key(self) -> &'static str {
        match self {
            Self::Users => keys::BLACKLIST_USERS,
            Self::Ips => keys::BLACKLIST_IPS,
        }
    }
}

/// A purchase token lives this long after use, answering retries with its order.
const USED_TOKEN_RETENTION_MS: u64 = 24 * 3600 * 1000;
/// Buyers' counts are kept this long after the activity's end (the purchase
/// script's `ends + 86400000`, which it sets at each sale).
const USER_COUNT_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// Handle on Redis: cheap to clone, one multiplexed connection underneath.
#[derive(Clone)]
pub struct Store {
    conn: RedisConn,
    timeout: Duration,
    scripts: std::sync::Arc<Scripts>,
}

impl Store {
    /// Connects to `url`: `redis://…` (one server) or a comma-separated list of
    /// cluster node URLs. A single server is connected lazily, so the backend
    /// starts (and reports not-ready) while Redis is still down.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let conn = if url.contains(',') {
            let nodes: Vec<&str> = url.split(',').map(str::trim).collect();
            let client = redis::cluster::ClusterClientBuilder::new(nodes)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .build()?;
            RedisConn::Cluster(client.get_async_connection().await?)
        } else if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://") {
            let client = redis::Client::open(url)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            RedisConn::Single(ConnectionManager::new_lazy_with_config(client, config)?)
        } else {
            return Err(StoreError::Url(format!(
                "{url:?}: expected redis://host:port[/db], rediss://… or a comma-separated list of cluster \
                 node URLs (set SECKILL_REDIS_URL)"
            )));
        };
        Ok(Self { conn, timeout, scripts: std::sync::Arc::new(Scripts::new()) })
    }

    /// How long one Redis interaction may take before it fails.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one Redis interaction under the store's timeout.
    pub(crate) async fn bounded<T, F>(&self, work: impl FnOnce(RedisConn) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, work(self.conn.clone())).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// Loads the scripts ahead of the first sale (they are loaded lazily otherwise).
    pub async fn load_scripts(&self) -> Result<(), StoreError> {
        let scripts = self.scripts.clone();
        self.bounded(|mut c| async move {
            scripts.token.load_async(&mut c).await?;
            scripts.purchase.load_async(&mut c).await?;
            scripts.release.load_async(&mut c).await?;
            scripts.restock.load_async(&mut c).await?;
            Ok(())
        })
        .await
    }

    /// Whether Redis has every script cached (`SCRIPT EXISTS`).
    pub async fn scripts_loaded(&self) -> Result<bool, StoreError> {
        let scripts = self.scripts.clone();
        let loaded: Vec<bool> = self
            .bounded(|mut c| async move {
                redis::cmd("SCRIPT")
                    .arg("EXISTS")
                    .arg(scripts.token.get_hash())
                    .arg(scripts.purchase.get_hash())
                    .arg(scripts.release.get_hash())
                    .arg(scripts.restock.get_hash())
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(loaded.iter().all(|l| *l))
    }

    /// `INFO <section>` as key/value pairs.
    pub async fn info(&self, section: &'static str) -> Result<HashMap<String, String>, StoreError> {
        let text: String =
            self.bounded(|mut c| async move { redis::cmd("INFO").arg(section).query_async(&mut c).await }).await?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect())
    }

    /// One value of `CONFIG GET`.
    pub async fn config_get(&self, name: &'static str) -> Result<String, StoreError> {
        let pair: Vec<String> = self
            .bounded(|mut c| async move { redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut c).await })
            .await?;
        pair.get(1).cloned().ok_or_else(|| StoreError::Reply(format!("CONFIG GET {name}: {pair:?}")))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await.map(drop) }).await
    }

    /// Creates an activity and pre-warms its stock; the activity is listed only
    /// once its stock, counters and order stream exist.
    pub async fn create_activity(&self, new: &NewActivityRecord) -> Result<u64, StoreError> {
        let id: u64 = self
            .bounded(|mut c| async move { redis::cmd("INCR").arg(keys::ACTIVITY_SEQ).query_async(&mut c).await })
            .await?;
        let new = new.clone();
        self.bounded(|mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(keys::activity(id))
                .arg("id")
                .arg(id)
                .arg("name")
                .arg(&new.name)
                .arg("price_cents")
                .arg(new.price_cents)
                .arg("total_stock")
                .arg(new.total_stock)
                .arg("limit_per_user")
                .arg(new.limit_per_user)
                .arg("starts_at_ms")
                .arg(new.starts_at_ms)
                .arg("ends_at_ms")
                .arg(new.ends_at_ms)
                .ignore()
                .cmd("SET")
                .arg(keys::inventory(id))
                .arg(new.total_stock)
                .ignore()
                .cmd("SET")
                .arg(keys::sold(id))
                .arg(0)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await?;
        self.ensure_group(id).await?;
        self.bounded(|mut c| async move {
            redis::cmd("ZADD").arg(keys::ACTIVITIES).arg(id).arg(id).query_async::<()>(&mut c).await
        })
        .await?;
        Ok(id)
    }

    /// All listed activity ids, oldest first.
    pub async fn activity_ids(&self) -> Result<Vec<u64>, StoreError> {
        self.bounded(|mut c| async move {
            redis::cmd("ZRANGE").arg(keys::ACTIVITIES).arg(0).arg(-1).query_async(&mut c).await
        })
        .await
    }

    /// Every listed activity with its counters, oldest first (an id whose
    /// record is gone is skipped).
    pub async fn activities(&self) -> Result<Vec<ActivityRecord>, StoreError> {
        let mut out = Vec::new();
        for id in self.activity_ids().await? {
            if let Some(record) = self.activity(id).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// One activity with its counters, or `None` if unknown.
    pub async fn activity(&self, id: u64) -> Result<Option<ActivityRecord>, StoreError> {
        let (fields, remaining, sold): (HashMap<String, String>, Option<i64>, Option<i64>) = self
            .bounded(|mut c| async move {
                redis::pipe()
                    .cmd("HGETALL")
                    .arg(keys::activity(id))
                    .cmd("GET")
                    .arg(keys::inventory(id))
                    .cmd("GET")
                    .arg(keys::sold(id))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| -> Result<i64, StoreError> {
            fields
                .get(name)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::Reply(format!("activity {id} lacks a numeric {name}")))
        };
        Ok(Some(ActivityRecord {
            id,
            name: fields.get("name").cloned().unwrap_or_default(),
            price_cents: field("price_cents")?,
            total_stock: field("total_stock")?,
            limit_per_user: field("limit_per_user")?,
            starts_at_ms: field("starts_at_ms")?,
            ends_at_ms: field("ends_at_ms")?,
            remaining: remaining.unwrap_or(0),
            sold: sold.unwrap_or(0),
        }))
    }

    /// Live counters of one activity.
    pub async fn counters(&self, id: u64, now_ms: i64) -> Result<Counters, StoreError> {
        let (remaining, sold, _, live_tokens, stream_length): (Option<i64>, Option<i64>, (), i64, i64) = self
            .bounded(|mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(keys::inventory(id))
                    .cmd("GET")
                    .arg(keys::sold(id))
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(keys::live_tokens(id))
                    .arg("-inf")
                    .arg(now_ms)
                    .ignore()
                    .cmd("ZCARD")
                    .arg(keys::live_tokens(id))
                    .cmd("XLEN")
                    .arg(keys::order_stream(id))
                    .query_async::<(Option<i64>, Option<i64>, i64, i64)>(&mut c)
                    .await
                    .map(|(r, s, l, x)| (r, s, (), l, x))
            })
            .await?;
        Ok(Counters { remaining: remaining.unwrap_or(0), sold: sold.unwrap_or(0), live_tokens, stream_length })
    }

    /// Runs the token script for `user` in `activity`.
    pub async fn issue_token(
        &self,
        activity: u64,
        user: &str,
        now_ms: i64,
        ttl_ms: u64,
        factor_per_mille: u64,
    ) -> Result<TokenOutcome, StoreError> {
        let candidate = format!("{:032x}", rand::random::<u128>());
        let scripts = self.scripts.clone();
        let reply: Vec<String> = self
            .bounded(|mut c| async move {
                scripts
                    .token
                    .key(keys::activity(activity))
                    .key(keys::inventory(activity))
                    .key(keys::user_limits(activity))
                    .key(keys::user_token(activity, user))
                    .key(keys::token(activity, &candidate))
                    .key(keys::live_tokens(activity))
                    .arg(user)
                    .arg(&candidate)
                    .arg(now_ms)
                    .arg(ttl_ms)
                    .arg(factor_per_mille)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        match reply.as_slice() {
            [ok, token, expires] if ok == "OK" => {
                Ok(TokenOutcome::Issued { token: token.clone(), expires_at_ms: parse_int(expires)? })
            }
            _ => Ok(TokenOutcome::Rejected(rejection(&reply)?)),
        }
    }

    /// Runs the purchase script for one buyer.
    pub async fn purchase(&self, req: &PurchaseRequest<'_>) -> Result<PurchaseOutcome, StoreError> {
        let one = Purchase {
            user: req.user.to_owned(),
            token: req.token.to_owned(),
            quantity: req.quantity.to_owned(),
            now_ms: req.now_ms,
        };
        let mut outcomes = self.purchase_batch(req.activity, req.pay_timeout_ms, std::slice::from_ref(&one)).await?;
        outcomes.pop().ok_or_else(|| StoreError::Reply("the purchase script answered nothing".into()))
    }

    /// Runs the purchase script once for several purchases of one activity;
    /// the outcomes are in the batch's order, each as if it had run alone
    /// after the ones before it.
    pub async fn purchase_batch(
        &self,
        activity: u64,
        pay_timeout_ms: u64,
        batch: &[Purchase],
    ) -> Result<Vec<PurchaseOutcome>, StoreError> {
        let a = activity;
        let mut invocation = self.scripts.purchase.key(keys::activity(a));
        invocation
            .key(keys::inventory(a))
            .key(keys::sold(a))
            .key(keys::order_stream(a))
            .key(keys::live_tokens(a))
            .key(keys::user_limits(a))
            .arg(pay_timeout_ms)
            .arg(USED_TOKEN_RETENTION_MS);
        for p in batch {
            invocation
                .key(keys::user_token(a, &p.user))
                .key(keys::token(a, &p.token))
                .key(keys::user_order(a, &p.user))
                .arg(&p.user)
                .arg(&p.token)
                .arg(&p.quantity)
                .arg(p.now_ms);
        }
        let replies: Vec<Vec<String>> =
            self.bounded(|mut c| async move { invocation.invoke_async(&mut c).await }).await?;
        if replies.len() != batch.len() {
            return Err(StoreError::Reply(format!(
                "{} purchases, {} answers: {replies:?}",
                batch.len(),
                replies.len()
            )));
        }
        replies.iter().map(|reply| purchase_outcome(reply)).collect()
    }

    /// Runs the release script: gives an order's stock back, exactly once.
    pub async fn release(
        &self,
        activity: u64,
        user: &str,
        order_id: &str,
        quantity: i64,
    ) -> Result<ReleaseOutcome, StoreError> {
        let scripts = self.scripts.clone();
        let reply: Vec<String> = self
            .bounded(|mut c| async move {
                scripts
                    .release
                    .key(keys::inventory(activity))
                    .key(keys::sold(activity))
                    .key(keys::user_limits(activity))
                    .key(keys::released(activity))
                    .arg(order_id)
                    .arg(quantity)
                    .arg(user)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        match reply.first().map(String::as_str) {
            Some("OK") if reply.len() == 3 => {
                Ok(ReleaseOutcome::Released { remaining: parse_int(&reply[1])?, sold: parse_int(&reply[2])? })
            }
            Some("ALREADY") => Ok(ReleaseOutcome::AlreadyReleased),
            Some("OVER_RELEASE") => Ok(ReleaseOutcome::OverRelease),
            _ => Ok(ReleaseOutcome::Rejected(rejection(&reply)?)),
        }
    }

    /// Sets an activity's total stock (remaining follows), refusing a total
    /// below what is already sold: `Ok(Err(sold))` then.
    pub async fn set_total_stock(&self, activity: u64, total: i64) -> Result<Result<i64, i64>, StoreError> {
        let scripts = self.scripts.clone();
        let reply: Vec<String> = self
            .bounded(|mut c| async move {
                scripts
                    .restock
                    .key(keys::activity(activity))
                    .key(keys::inventory(activity))
                    .key(keys::sold(activity))
                    .arg(total)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("OK"), Some(remaining)) => Ok(Ok(parse_int(remaining)?)),
            (Some("BELOW_SOLD"), Some(sold)) => Ok(Err(parse_int(sold)?)),
            _ => Err(StoreError::Reply(format!("restock: {reply:?}"))),
        }
    }

    /// Changes an activity's descriptive fields (name, price, limit, window).
    /// A new end moves the buyers' counts' expiry with it, in the same
    /// transaction, so a count lives as long as the activity can still sell.
    pub async fn update_activity(&self, activity: u64, fields: Vec<(&'static str, String)>) -> Result<(), StoreError> {
        if fields.is_empty() {
            return Ok(());
        }
        let new_end: Option<i64> = fields.iter().find(|(f, _)| *f == "ends_at_ms").and_then(|(_, v)| v.parse().ok());
        self.bounded(|mut c| async move {
            let mut pipe = redis::pipe();
            pipe.atomic().cmd("HSET").arg(keys::activity(activity)).arg(&fields).ignore();
            if let Some(end) = new_end {
                pipe.cmd("PEXPIREAT").arg(keys::user_limits(activity)).arg(end + USER_COUNT_RETENTION_MS).ignore();
            }
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// Removes an activity that has sold nothing and has no order waiting, in
    /// one script (so no purchase can slip between the check and the delete),
    /// then unlists it. A listed id whose record is gone is skipped by every
    /// reader, so a failure between the two steps leaves nothing half-sold.
    pub async fn delete_activity(&self, activity: u64) -> Result<DeleteOutcome, StoreError> {
        let scripts = self.scripts.clone();
        let reply: Vec<String> = self
            .bounded(|mut c| async move {
                scripts
                    .delete_activity
                    .key(keys::activity(activity))
                    .key(keys::inventory(activity))
                    .key(keys::sold(activity))
                    .key(keys::live_tokens(activity))
                    .key(keys::order_stream(activity))
                    .key(keys::dead_letters(activity))
                    .key(keys::user_limits(activity))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let outcome = match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("OK"), _) => DeleteOutcome::Deleted,
            (Some("NOT_FOUND"), _) => DeleteOutcome::NotFound,
            (Some("SOLD"), Some(n)) => DeleteOutcome::Sold(parse_int(n)?),
            (Some("ORDERS_WAITING"), Some(n)) => DeleteOutcome::OrdersWaiting(parse_int(n)?),
            _ => return Err(StoreError::Reply(format!("delete_activity: {reply:?}"))),
        };
        if matches!(outcome, DeleteOutcome::Deleted | DeleteOutcome::NotFound) {
            self.unlist(activity).await?;
        }
        Ok(outcome)
    }

    /// Takes an id off the activity index (its record is gone).
    pub async fn unlist(&self, activity: u64) -> Result<(), StoreError> {
        self.bounded(|mut c| async move {
            redis::cmd("ZREM").arg(keys::ACTIVITIES).arg(activity).query_async::<()>(&mut c).await
        })
        .await
    }

    /// Whether an activity's record exists.
    pub async fn activity_exists(&self, activity: u64) -> Result<bool, StoreError> {
        self.bounded(
            |mut c| async move { redis::cmd("EXISTS").arg(keys::activity(activity)).query_async(&mut c).await },
        )
        .await
    }

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

    /// Takes a short lock (`SET NX PX`); false if someone holds it.
    pub async fn try_lock(&self, key: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.bounded(|mut c| async move {
            let set: Option<String> =
                redis::cmd("SET").arg(&key).arg(1).arg("NX").arg("PX").arg(ttl_ms).query_async(&mut c).await?;
            Ok(set.is_some())
        })
        .await
    }

    pub async fn unlock(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.bounded(|mut c| async move { redis::cmd("DEL").arg(&key).query_async::<()>(&mut c).await }).await
    }

    /// Adds `value` to a blacklist; true if it was not there yet.
    pub async fn blacklist_add(&self, kind: BlacklistKind, value: &str) -> Result<bool, StoreError> {
        self.blacklist_change("SADD", kind, value).await
    }

    /// Removes `value` from a blacklist; true if it was there.
    pub async fn blacklist_remove(&self, kind: BlacklistKind, value: &str) -> Result<bool, StoreError> {
        self.blacklist_change("SREM", kind, value).await
    }

    async fn blacklist_change(
        &self,
        command: &'static str,
        kind: BlacklistKind,
        value: &str,
    ) -> Result<bool, StoreError> {
        let value = value.to_owned();
        let (changed,): (i64,) = self
            .bounded(|mut c| async move {
                redis::pipe()
                    .cmd(command)
                    .arg(kind.key())
                    .arg(&value)
                    .cmd("INCR")
                    .arg(keys::BLACKLIST_VERSION)
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(changed == 1)
    }

    pub async fn blacklist_contains(&self, kind: BlacklistKind, value: &str) -> Result<bool, StoreError> {
        let value = value.to_owned();
        self.bounded(
            |mut c| async move { redis::cmd("SISMEMBER").arg(kind.key()).arg(&value).query_async(&mut c).await },
        )
        .await
    }

    /// One page of a blacklist: `(next cursor or None, entries)`.
    pub async fn blacklist_page(
        &self,
        kind: BlacklistKind,
        cursor: u64,
        limit: usize,
    ) -> Result<(Option<u64>, Vec<String>), StoreError> {
        let (next, items): (u64, Vec<String>) = self
            .bounded(|mut c| async move {
                redis::cmd("SSCAN").arg(kind.key()).arg(cursor).arg("COUNT").arg(limit).query_async(&mut c).await
            })
            .await?;
        Ok(((next != 0).then_some(next), items))
    }

    /// The whole blacklist with its version, for the in-memory copy.
    pub async fn blacklist_snapshot(&self) -> Result<(i64, Vec<String>, Vec<String>), StoreError> {
        self.bounded(|mut c| async move {
            let (version, users, ips): (Option<i64>, Vec<String>, Vec<String>) = redis::pipe()
                .cmd("GET")
                .arg(keys::BLACKLIST_VERSION)
                .cmd("SMEMBERS")
                .arg(keys::BLACKLIST_USERS)
                .cmd("SMEMBERS")
                .arg(keys::BLACKLIST_IPS)
                .query_async(&mut c)
                .await?;
            Ok((version.unwrap_or(0), users, ips))
        })
        .await
    }

    pub async fn hset(&self, key: &'static str, field: &str, value: &str) -> Result<(), StoreError> {
        let (field, value) = (field.to_owned(), value.to_owned());
        self.bounded(
            |mut c| async move { redis::cmd("HSET").arg(key).arg(&field).arg(&value).query_async(&mut c).await },
        )
        .await
    }

    pub async fn hgetall(&self, key: &'static str) -> Result<HashMap<String, String>, StoreError> {
        self.bounded(|mut c| async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await }).await
    }

    pub async fn blacklist_version(&self) -> Result<i64, StoreError> {
        self.bounded(|mut c| async move {
            let v: Option<i64> = redis::cmd("GET").arg(keys::BLACKLIST_VERSION).query_async(&mut c).await?;
            Ok(v.unwrap_or(0))
        })
        .await
    }
}

/// An activity to create, with its window in milliseconds since the epoch.
#[derive(Debug, Clone)]
pub struct NewActivityRecord {
    pub name: String,
    pub price_cents: i64,
    pub total_stock: i64,
    pub limit_per_user: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

fn parse_int(s: &str) -> Result<i64, StoreError> {
    s.parse().map_err(|_| StoreError::Reply(format!("expected an integer, got {s:?}")))
}

/// Maps one purchase's reply (`OK …`, `REPLAY …` or `{CODE, detail}`) onto its outcome.
fn purchase_outcome(reply: &[String]) -> Result<PurchaseOutcome, StoreError> {
    Ok(match reply {
        [ok, order_id, remaining, sold, created, deadline, amount] if ok == "OK" => PurchaseOutcome::Accepted(Sale {
            order_id: order_id.clone(),
            remaining: parse_int(remaining)?,
            sold: parse_int(sold)?,
            created_at_ms: parse_int(created)?,
            pay_deadline_ms: parse_int(deadline)?,
            amount_cents: parse_int(amount)?,
        }),
        [replay, order_id] if replay == "REPLAY" => PurchaseOutcome::Replay { order_id: order_id.clone() },
        _ => PurchaseOutcome::Rejected(rejection(reply)?),
    })
}

/// Maps a script's `{CODE, detail}` reply onto a `Rejection`.
fn rejection(reply: &[String]) -> Result<Rejection, StoreError> {
    let detail = reply.get(1).cloned().unwrap_or_default();
    Ok(match reply.first().map(String::as_str) {
        Some("NOT_FOUND") => Rejection::NotFound,
        Some("NOT_STARTED") => Rejection::NotStarted,
        Some("ENDED") => Rejection::Ended,
        Some("SOLD_OUT") => Rejection::SoldOut,
        Some("LIMIT_EXCEEDED") => Rejection::LimitExceeded,
        Some("TOKENS_EXHAUSTED") => Rejection::TokensExhausted { retry_after_ms: detail.parse().unwrap_or(1000) },
        Some("INVALID_TOKEN") => Rejection::InvalidToken(detail),
        Some("BAD_QUANTITY") => Rejection::BadQuantity,
        Some("BAD_ARG") => Rejection::BadArg(detail),
        _ => return Err(StoreError::Reply(format!("{reply:?}"))),
    })
}

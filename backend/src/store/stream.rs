//! The order streams: what the purchase script appends, how the worker reads,
//! acknowledges and dead-letters it, and the snapshot reconciliation takes.
//!
//! An entry is deleted from the stream once its row is committed (XACK and
//! XDEL in one MULTI), so a stream holds exactly the orders not yet in the
//! database: its length is the worker's lag.

use std::collections::HashMap;

use redis::streams::{StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadReply};

use super::client::{Store, StoreError};
use super::keys;

/// One stream entry, fields as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub fields: HashMap<String, String>,
}

impl From<StreamId> for Entry {
    fn from(s: StreamId) -> Self {
        let fields = s
            .map
            .iter()
            .map(|(k, v)| (k.clone(), redis::from_redis_value::<String>(v.clone()).unwrap_or_default()))
            .collect();
        Self { id: s.id, fields }
    }
}

/// A stream entry id `ms-seq` as one sortable number.
pub fn event_seq(id: &str) -> Option<i64> {
    let (ms, seq) = id.split_once('-')?;
    let (ms, seq): (i64, i64) = (ms.parse().ok()?, seq.parse().ok()?);
    Some((ms << 20) | seq.min((1 << 20) - 1))
}

/// What reconciliation reads from Redis for one activity, in one MULTI.
#[derive(Debug, Clone)]
pub struct StreamSnapshot {
    pub remaining: i64,
    pub sold: i64,
    pub last_event_seq: i64,
    pub entries: Vec<Entry>,
    pub dead: Vec<Entry>,
    pub pending: i64,
}

/// A stream read through a consumer group: the order events (the order
/// worker) or the payment callbacks (the payment applier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Orders,
    Payments,
}

impl Queue {
    fn key(self, a: u64) -> String {
        match self {
            Self::Orders => keys::order_stream(a),
            Self::Payments => keys::payment_stream(a),
        }
    }

    fn group(self) -> &'static str {
        match self {
            Self::Orders => keys::ORDER_GROUP,
            Self::Payments => keys::PAYMENT_GROUP,
        }
    }
}

fn entries(reply: StreamReadReply) -> Vec<Entry> {
    reply.keys.into_iter().flat_map(|k| k.ids).map(Entry::from).collect()
}

impl Store {
    /// Creates the worker's consumer group if it does not exist yet.
    pub async fn ensure_group(&self, a: u64) -> Result<(), StoreError> {
        self.ensure_group_of(Queue::Orders, a).await
    }

    /// Creates `queue`'s consumer group of activity `a` if it does not exist yet.
    pub async fn ensure_group_of(&self, queue: Queue, a: u64) -> Result<(), StoreError> {
        self.bounded(|mut c| async move {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(queue.key(a))
                .arg(queue.group())
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut c)
                .await;
            match created {
                Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
                _ => Ok(()),
            }
        })
        .await
    }

    /// Reads up to `count` entries for `consumer`: its own pending ones when
    /// `own_pending`, else new ones.
    pub async fn read_group(
        &self,
        a: u64,
        consumer: &str,
        own_pending: bool,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.read_group_of(Queue::Orders, a, consumer, own_pending, count).await
    }

    /// [`Store::read_group`] of `queue`.
    pub async fn read_group_of(
        &self,
        queue: Queue,
        a: u64,
        consumer: &str,
        own_pending: bool,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(queue.group())
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(queue.key(a))
            .arg(if own_pending { "0" } else { ">" });
        let reply: Option<StreamReadReply> = self.read_queue(queue, read).await?;
        Ok(reply.map(entries).unwrap_or_default())
    }

    /// Takes over entries another consumer left pending for `min_idle_ms`.
    pub async fn autoclaim(
        &self,
        a: u64,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.autoclaim_of(Queue::Orders, a, consumer, min_idle_ms, count).await
    }

    /// [`Store::autoclaim`] of `queue`.
    pub async fn autoclaim_of(
        &self,
        queue: Queue,
        a: u64,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut claim = redis::cmd("XAUTOCLAIM");
        claim.arg(queue.key(a)).arg(queue.group()).arg(consumer).arg(min_idle_ms).arg("0-0").arg("COUNT").arg(count);
        let reply: StreamAutoClaimReply = self.read_queue(queue, claim).await?;
        Ok(reply.claimed.into_iter().map(Entry::from).collect())
    }

    /// Runs a read of `queue`. Order events are read acknowledged like a
    /// purchase: a row must not be written for an event that a failover could
    /// still take back (the unit would sell twice). A payment callback was
    /// acknowledged when it was added, and applying it twice changes nothing.
    async fn read_queue<T>(&self, queue: Queue, cmd: redis::Cmd) -> Result<T, StoreError>
    where
        T: redis::FromRedisValue + Send + 'static,
    {
        match queue {
            Queue::Orders => self.acknowledged(cmd, None).await,
            Queue::Payments => self.bounded(|mut c| async move { cmd.query_async(&mut c).await }).await,
        }
    }

    /// Acknowledges and deletes entries whose rows are committed.
    pub async fn ack_delete(&self, a: u64, ids: &[String]) -> Result<(), StoreError> {
        self.ack_delete_of(Queue::Orders, a, ids).await
    }

    /// [`Store::ack_delete`] of `queue`.
    pub async fn ack_delete_of(&self, queue: Queue, a: u64, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        self.bounded(|mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("XACK")
                .arg(queue.key(a))
                .arg(queue.group())
                .arg(&ids)
                .ignore()
                .cmd("XDEL")
                .arg(queue.key(a))
                .arg(&ids)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Appends a payment callback to activity `a`'s payment stream (its group
    /// made first, so that no callback is added where nobody reads), held by
    /// the replicas a purchase waits for before the provider hears `202`;
    /// returns the entry id.
    pub async fn add_payment(&self, a: u64, fields: &[(&'static str, String)]) -> Result<String, StoreError> {
        self.ensure_group_of(Queue::Payments, a).await?;
        let mut add = redis::cmd("XADD");
        add.arg(keys::payment_stream(a)).arg("*").arg(fields);
        self.acknowledged(add, None).await
    }

    /// Moves an entry to the dead-letter stream with `reason`, atomically.
    pub async fn dead_letter(&self, a: u64, entry: &Entry, reason: &str) -> Result<(), StoreError> {
        let entry = entry.clone();
        let reason = reason.to_owned();
        self.bounded(|mut c| async move {
            let mut fields: Vec<(String, String)> = entry.fields.clone().into_iter().collect();
            fields.sort();
            fields.push(("dead_reason".into(), reason));
            fields.push(("dead_entry_id".into(), entry.id.clone()));
            redis::pipe()
                .atomic()
                .cmd("XADD")
                .arg(keys::dead_letters(a))
                .arg("*")
                .arg(&fields)
                .ignore()
                .cmd("XACK")
                .arg(keys::order_stream(a))
                .arg(keys::ORDER_GROUP)
                .arg(&entry.id)
                .ignore()
                .cmd("XDEL")
                .arg(keys::order_stream(a))
                .arg(&entry.id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// The entry `event_id` of activity `a`'s stream, if it is still there.
    pub async fn stream_entry(&self, a: u64, event_id: &str) -> Result<Option<Entry>, StoreError> {
        self.entry_at(keys::order_stream(a), event_id).await
    }

    /// Entry `id` of the stream at `key`, if it is still there.
    async fn entry_at(&self, key: String, id: &str) -> Result<Option<Entry>, StoreError> {
        let id = id.to_owned();
        let reply: StreamRangeReply = self
            .bounded(|mut c| async move { redis::cmd("XRANGE").arg(&key).arg(&id).arg(&id).query_async(&mut c).await })
            .await?;
        Ok(reply.ids.into_iter().next().map(Entry::from))
    }

    /// Up to `count` dead letters of one activity after `after` (exclusive), oldest first.
    pub async fn dead_letters_after(
        &self,
        a: u64,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let reply: StreamRangeReply = self
            .bounded(|mut c| async move {
                redis::cmd("XRANGE")
                    .arg(keys::dead_letters(a))
                    .arg(&start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(reply.ids.into_iter().map(Entry::from).collect())
    }

    /// One dead letter, if it is still there.
    pub async fn dead_letter_entry(&self, a: u64, id: &str) -> Result<Option<Entry>, StoreError> {
        self.entry_at(keys::dead_letters(a), id).await
    }

    /// Removes a settled dead letter.
    pub async fn remove_dead_letter(&self, a: u64, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.bounded(|mut c| async move {
            redis::cmd("XDEL").arg(keys::dead_letters(a)).arg(&id).query_async::<()>(&mut c).await
        })
        .await
    }

    /// Whether an order's stock was given back already (`release.lua`'s set).
    pub async fn is_released(&self, a: u64, order_id: &str) -> Result<bool, StoreError> {
        let order_id = order_id.to_owned();
        self.bounded(|mut c| async move {
            redis::cmd("SISMEMBER").arg(keys::released(a)).arg(&order_id).query_async(&mut c).await
        })
        .await
    }

    /// Dead-lettered entries of one activity, oldest first.
    pub async fn dead_letters(&self, a: u64, limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.dead_letters_after(a, None, limit).await
    }

    /// How many consumers of one activity's order group talked to Redis in the
    /// last `within_ms` (a crashed worker's consumer stays registered, but goes idle).
    pub async fn live_consumers(&self, a: u64, within_ms: i64) -> Result<i64, StoreError> {
        let consumers: redis::RedisResult<redis::Value> = self
            .bounded(|mut c| async move {
                Ok(redis::cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(keys::order_stream(a))
                    .arg(keys::ORDER_GROUP)
                    .query_async(&mut c)
                    .await)
            })
            .await?;
        let Ok(redis::Value::Array(consumers)) = consumers else { return Ok(0) };
        Ok(consumers
            .iter()
            .filter_map(|c| info_field(c, "idle").and_then(|idle| idle.parse::<i64>().ok()))
            .filter(|idle| *idle < within_ms)
            .count() as i64)
    }

    /// Length and pending count of one activity's stream.
    pub async fn stream_lag(&self, a: u64) -> Result<(i64, i64), StoreError> {
        self.bounded(|mut c| async move {
            let (len, pending): (i64, redis::Value) = redis::pipe()
                .cmd("XLEN")
                .arg(keys::order_stream(a))
                .cmd("XPENDING")
                .arg(keys::order_stream(a))
                .arg(keys::ORDER_GROUP)
                .query_async(&mut c)
                .await?;
            Ok((len, pending_count(&pending)))
        })
        .await
    }

    /// Counters, stream and dead letters of one activity at one instant.
    pub async fn stream_snapshot(&self, a: u64) -> Result<StreamSnapshot, StoreError> {
        let (remaining, sold, info, stream, dead, pending): (
            Option<i64>,
            Option<i64>,
            redis::Value,
            StreamRangeReply,
            StreamRangeReply,
            redis::Value,
        ) = self
            .bounded(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("GET")
                    .arg(keys::inventory(a))
                    .cmd("GET")
                    .arg(keys::sold(a))
                    .cmd("XINFO")
                    .arg("STREAM")
                    .arg(keys::order_stream(a))
                    .cmd("XRANGE")
                    .arg(keys::order_stream(a))
                    .arg("-")
                    .arg("+")
                    .cmd("XRANGE")
                    .arg(keys::dead_letters(a))
                    .arg("-")
                    .arg("+")
                    .cmd("XPENDING")
                    .arg(keys::order_stream(a))
                    .arg(keys::ORDER_GROUP)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let last_id = info_field(&info, "last-generated-id").unwrap_or_else(|| "0-0".into());
        Ok(StreamSnapshot {
            remaining: remaining.unwrap_or(0),
            sold: sold.unwrap_or(0),
            last_event_seq: event_seq(&last_id).unwrap_or(0),
            entries: stream.ids.into_iter().map(Entry::from).collect(),
            dead: dead.ids.into_iter().map(Entry::from).collect(),
            pending: pending_count(&pending),
        })
    }
}

/// The count of an `XPENDING key group` summary reply.
fn pending_count(v: &redis::Value) -> i64 {
    match v {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    }
}

/// A field of an `XINFO STREAM` reply (a flat key/value array or a map).
fn info_field(v: &redis::Value, name: &str) -> Option<String> {
    let pairs: Vec<(redis::Value, redis::Value)> = match v {
        redis::Value::Array(items) => {
            items.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone())).collect()
        }
        redis::Value::Map(map) => map.clone(),
        _ => return None,
    };
    pairs.into_iter().find_map(|(k, v)| {
        let k: String = redis::from_redis_value(k).ok()?;
        (k == name).then(|| redis::from_redis_value(v).ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_seq_orders_like_the_stream() {
        assert!(event_seq("5-1").unwrap() < event_seq("5-2").unwrap());
        assert!(event_seq("5-999999").unwrap() < event_seq("6-0").unwrap());
        assert_eq!(event_seq("nope"), None);
    }
}

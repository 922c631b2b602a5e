//! A crowd of buyers for the fault tests (a process `kill -9`ed, a Redis
//! master lost), and what must hold once the dust settles.
//!
//! Each buyer comes from an address of its own and does what the contract
//! allows: ask again, with the same token, on `429`, `5xx` or a dropped
//! connection. So whatever a fault does to the answers, a buyer ends with an
//! order or a `sold_out`; and the checks after it hold whatever the timing:
//! every purchase that got a 202 is a row, nothing is oversold, no unit is
//! sold twice.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use seckill_backend::db::Db;
use seckill_backend::store::Store;
use serde_json::{Value, json};

use crate::{eventually, jwt, order_rows};

/// How long a buyer keeps asking again.
const PATIENCE: Duration = Duration::from_secs(90);

/// The user id of buyer `i`.
pub fn buyer_user(i: usize) -> String {
    format!("buyer-{i}")
}

/// What came of one buyer.
#[derive(Debug)]
pub enum Outcome {
    /// The order, and when the purchase that was accepted was sent.
    Bought {
        order: String,
        sent_at: Instant,
    },
    SoldOut,
}

/// One buyer: token, then purchase with that token, each asked again while
/// the answer says "come back". A token the store no longer knows (a failover
/// took it back before any replica had it) is asked for again, and counted.
async fn buyer(base: &str, i: usize, a: u64, tokens_lost: &AtomicUsize) -> Outcome {
    let ip = Ipv4Addr::new(127, 20, (i / 250) as u8, (i % 250 + 1) as u8);
    let http = reqwest::Client::builder().local_address(IpAddr::V4(ip)).build().unwrap();
    let bearer = jwt(&buyer_user(i));
    let start = Instant::now();
    let mut token: Option<String> = None;
    loop {
        assert!(start.elapsed() < PATIENCE, "buyer {i} never got an answer");
        let request = match &token {
            None => http.post(format!("{base}/api/activities/{a}/token")).bearer_auth(&bearer),
            Some(t) => http
                .post(format!("{base}/api/activities/{a}/purchase"))
                .bearer_auth(&bearer)
                .json(&json!({"token": t, "quantity": 1})),
        };
        let sent_at = Instant::now();
        let (status, retry_after, body) = match request.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                (status, retry_after, res.json::<Value>().await.unwrap_or(Value::Null))
            }
            // The backend died under the request: the edge dropped it.
            Err(_) => (0, None, Value::Null),
        };
        match (status, body["code"].as_str()) {
            (200, _) if token.is_none() => token = Some(body["token"].as_str().unwrap().to_owned()),
            (202, _) => return Outcome::Bought { order: body["order_id"].as_str().unwrap().to_owned(), sent_at },
            (409, Some("sold_out")) => return Outcome::SoldOut,
            (403, Some("invalid_token")) if token.is_some() => {
                tokens_lost.fetch_add(1, Ordering::Relaxed);
                token = None;
            }
            (0 | 429 | 500..=599, _) => {
                // Honour retry-after, briefly: this crowd is in a hurry.
                let wait = retry_after.map_or(20, |s| (s * 1000).min(500));
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            other => panic!("buyer {i}: unexpected answer {other:?}: {body}"),
        }
    }
}

/// A crowd of buyers let loose on activity `a` at `base`.
pub struct Crowd {
    buyers: Vec<tokio::task::JoinHandle<(usize, Outcome)>>,
    done: Arc<AtomicUsize>,
    tokens_lost: Arc<AtomicUsize>,
}

/// What a crowd ended with.
pub struct Finished {
    /// Order id → buyer.
    pub bought: HashMap<String, usize>,
    pub sold_out: usize,
    /// When each accepted purchase was sent.
    pub sent_at: Vec<Instant>,
    /// Purchases refused for a token the store had lost (asked again with a new one).
    pub tokens_lost: usize,
}

impl Finished {
    /// The first accepted purchase sent after `t`.
    pub fn first_sale_after(&self, t: Instant) -> Option<Duration> {
        self.sent_at.iter().filter(|s| **s > t).map(|s| *s - t).min()
    }
}

impl Crowd {
    /// All `n` buyers at once.
    pub fn start(base: &str, a: u64, n: usize) -> Self {
        Self::arriving(base, a, n, Duration::ZERO)
    }

    /// Buyer `i` arrives `i × every` after the start: a rush that lasts,
    /// however fast the machine sells, so that a fault lands in its middle.
    pub fn arriving(base: &str, a: u64, n: usize, every: Duration) -> Self {
        let (done, tokens_lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let start = tokio::time::Instant::now();
        let buyers = (0..n)
            .map(|i| {
                let (base, done, tokens_lost) = (base.to_owned(), done.clone(), tokens_lost.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until(start + every * i as u32).await;
                    let outcome = buyer(&base, i, a, &tokens_lost).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    (i, outcome)
                })
            })
            .collect();
        Self { buyers, done, tokens_lost }
    }

    /// Buyers done so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits for every buyer.
    pub async fn finish(self) -> Finished {
        let tokens_lost = self.tokens_lost.load(Ordering::Relaxed);
        let mut finished = Finished { bought: HashMap::new(), sold_out: 0, sent_at: Vec::new(), tokens_lost };
        for result in join_all(self.buyers).await {
            match result.unwrap() {
                (i, Outcome::Bought { order, sent_at }) => {
                    assert!(finished.bought.insert(order, i).is_none(), "one order, two buyers");
                    finished.sent_at.push(sent_at);
                }
                (_, Outcome::SoldOut) => finished.sold_out += 1,
            }
        }
        finished
    }
}

/// What must hold once the dust settles: every accepted order is exactly one
/// row of its buyer, the rows are exactly `sold`, and `inventory + sold == total`.
/// `store` reaches the Redis the sale ran on, whatever its topology.
pub async fn assert_nothing_lost_or_oversold(
    store: &Store,
    db: &Db,
    a: u64,
    stock: i64,
    bought: &HashMap<String, usize>,
) {
    eventually(Duration::from_secs(60), "every accepted order to become a row", || async {
        let counters = store.counters(a, 0).await.ok()?;
        (counters.stream_length == 0 && order_rows(db, a).await.len() >= bought.len()).then_some(())
    })
    .await;
    let rows = order_rows(db, a).await;
    let ids: HashSet<&str> = rows.iter().map(|r| r.order_id.as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "an order id has two rows");
    for (order, i) in bought {
        let row = rows.iter().find(|r| &r.order_id == order).unwrap_or_else(|| panic!("accepted order {order} lost"));
        assert_eq!(row.user_id, buyer_user(*i));
    }
    let users: HashSet<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
    assert_eq!(users.len(), rows.len(), "a buyer (limit 1) holds two orders");
    let counters = store.counters(a, 0).await.unwrap();
    assert!(rows.len() as i64 <= stock, "{} rows for {stock} units", rows.len());
    assert_eq!(counters.sold, rows.len() as i64, "sold counts exactly the rows: no unit sold twice, none lost");
    assert_eq!(counters.remaining + counters.sold, stock, "inventory + sold == total");
}

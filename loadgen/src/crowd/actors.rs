//! The crowd on the wire: each client's behaviour, on a connection from its
//! own address.
//!
//! `--connections` tasks take the arrivals in turn (a buyer or a refresher
//! each; a new connection per client, as a new visitor opens one), while
//! every bot hammers on its own connections from its one address until the
//! crowd has sent `--requests`. Every answer goes into the shared [`Tally`]
//! at once, so the progress line is live. A lost connection is reopened and
//! the request repeated: the token and the purchase are idempotent per the
//! contract, so a repeat can never buy twice.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Method, StatusCode, Uri};
use seckill_api::{EDGE_DECISION_HEADER, PurchaseAccepted, PurchaseToken};

use super::plan::{Actor, Class};
use super::tally::{Seen, Tally};
use crate::client::{Answer, Endpoint, Sender, send};
use crate::report::error_code;

/// Attempts per request before it counts as unanswered.
const MAX_ATTEMPTS: u32 = 3;
/// The longest `retry-after` an eager buyer honours; a longer one ends its try.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where the crowd's requests go.
pub struct Routes {
    pub token: Uri,
    pub purchase: Uri,
    pub page: Uri,
}

/// What every task of a crowd run shares.
pub struct Crowd {
    pub endpoint: Arc<Endpoint>,
    pub routes: Routes,
    /// Bind each client to its own address (the target is on loopback).
    pub distinct_sources: bool,
    pub arrivals: Vec<Actor>,
    /// `Authorization` of client `n` (refreshers have none).
    pub auth: Vec<Option<HeaderValue>>,
    pub quantity: u64,
    pub refreshes: u32,
    pub eager_retries: u32,
    /// Bots stop once the crowd has sent this many requests.
    pub budget: u64,
    pub tally: Mutex<Tally>,
    pub sent: AtomicU64,
    next: AtomicUsize,
    arrivals_done: AtomicBool,
    started: Instant,
}

/// What each kind of client does once it has its turn.
impl Crowd {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        endpoint: Arc<Endpoint>,
        routes: Routes,
        distinct_sources: bool,
        arrivals: Vec<Actor>,
        auth: Vec<Option<HeaderValue>>,
        quantity: u64,
        refreshes: u32,
        eager_retries: u32,
        budget: u64,
        stock: u64,
    ) -> Self {
        Self {
            endpoint,
            routes,
            distinct_sources,
            arrivals,
            auth,
            quantity,
            refreshes,
            eager_retries,
            budget,
            tally: Mutex::new(Tally::new(stock)),
            sent: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            arrivals_done: AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn arrivals_done(&self) -> bool {
        self.arrivals_done.load(Ordering::Relaxed)
    }

    /// Runs the whole crowd: `connections` tasks for the arrivals, and
    /// `bot_connections` tasks for each of `bots`. Returns when every
    /// arrival is done and the bots have stopped.
    pub async fn run(self: Arc<Self>, connections: usize, bots: &[Actor], bot_connections: usize) -> Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..connections.clamp(1, self.arrivals.len().max(1)) {
            let crowd = self.clone();
            tasks.spawn(async move { crowd.take_turns().await });
        }
        let mut bot_tasks = tokio::task::JoinSet::new();
        for &bot in bots {
            for _ in 0..bot_connections {
                let crowd = self.clone();
                bot_tasks.spawn(async move { crowd.hammer(bot).await });
            }
        }
        while let Some(done) = tasks.join_next().await {
            done.context("a crowd task panicked")?;
        }
        self.arrivals_done.store(true, Ordering::Relaxed);
        while let Some(done) = bot_tasks.join_next().await {
            done.context("a bot task panicked")?;
        }
        Ok(())
    }

    /// One connection's share of the arrivals, one client after another.
    async fn take_turns(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(&actor) = self.arrivals.get(i) else { return };
            let mut conn = Conn::new(self, actor);
            match actor.class {
                Class::Refresher => {
                    for _ in 0..self.refreshes {
                        if conn.ask(Method::GET, &self.routes.page, Bytes::new()).await.is_none() {
                            break;
                        }
                    }
                }
                Class::Eager => conn.buy(self.eager_retries).await,
                _ => conn.buy(0).await,
            }
        }
    }

    /// A bot: a token and, when it gets one, a purchase, back to back until
    /// the crowd has sent its requests (and every arrival had its turn).
    async fn hammer(&self, bot: Actor) {
        let mut conn = Conn::new(self, bot);
        while self.sent.load(Ordering::Relaxed) < self.budget {
            conn.buy(0).await;
        }
    }
}

/// One client's connection.
struct Conn<'a> {
    crowd: &'a Crowd,
    actor: Actor,
    auth: Option<&'a HeaderValue>,
    sender: Option<Sender>,
}

impl<'a> Conn<'a> {
    fn new(crowd: &'a Crowd, actor: Actor) -> Self {
        let auth = crowd.auth.get(actor.n as usize).and_then(Option::as_ref);
        Self { crowd, actor, auth, sender: None }
    }

    fn source(&self) -> Option<IpAddr> {
        self.crowd.distinct_sources.then(|| self.actor.source())
    }

    /// Token, then purchase; a `rate_limited` or `unavailable` answer is
    /// tried again after its `retry-after`, up to `retries` times in all.
    async fn buy(&mut self, mut retries: u32) {
        let token_route = &self.crowd.routes.token;
        let token = loop {
            let Some(answer) = self.ask(Method::POST, token_route, Bytes::new()).await else { return };
            if answer.status == StatusCode::OK {
                match serde_json::from_slice::<PurchaseToken>(&answer.body) {
                    Ok(t) => break t.token,
                    Err(_) => return,
                }
            }
            if !self.wait_to_retry(&answer, &mut retries).await {
                return;
            }
        };
        let body = crate::buyers::purchase_body(&token, self.crowd.quantity);
        let purchase_route = &self.crowd.routes.purchase;
        loop {
            let Some(answer) = self.ask(Method::POST, purchase_route, body.clone()).await else { return };
            if answer.status == StatusCode::ACCEPTED {
                let at = self.crowd.elapsed();
                let order = serde_json::from_slice::<PurchaseAccepted>(&answer.body).map(|a| a.order_id);
                // A 202 without an order id still counts: as one order of its own.
                let order = order.unwrap_or_else(|_| format!("unreadable-{}-{at:?}", self.actor.n));
                self.crowd.tally().sale(self.actor.class, self.actor.n, &order, self.crowd.quantity, at);
                return;
            }
            if !self.wait_to_retry(&answer, &mut retries).await {
                return;
            }
        }
    }

    /// Whether to try again: a refusal that says "later", with retries left;
    /// waits the answer's `retry-after` first.
    async fn wait_to_retry(&self, answer: &Answer, retries: &mut u32) -> bool {
        let later = matches!(answer.status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE);
        if !later || *retries == 0 {
            return false;
        }
        *retries -= 1;
        let wait = answer
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::from_millis(100), Duration::from_secs);
        if wait > MAX_RETRY_AFTER {
            return false;
        }
        tokio::time::sleep(wait).await;
        true
    }

    /// Sends one request and counts its answer; `None` when it got none.
    async fn ask(&mut self, method: Method, uri: &Uri, body: Bytes) -> Option<Answer> {
        let purchase = uri == &self.crowd.routes.purchase;
        let started = Instant::now();
        let mut last_error = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            self.crowd.sent.fetch_add(1, Ordering::Relaxed);
            match self.exchange(method.clone(), uri, &body).await {
                Ok(answer) => {
                    let seen = Seen {
                        status: answer.status.as_u16(),
                        code: if answer.status.is_success() { None } else { error_code(&answer.body) },
                        latency: started.elapsed(),
                        from_edge: answer.headers.contains_key(EDGE_DECISION_HEADER),
                        at: self.crowd.elapsed(),
                    };
                    self.crowd.tally().record(self.actor.class, seen);
                    return Some(answer);
                }
                Err(e) => {
                    self.sender = None;
                    last_error = format!("{e:#}");
                    if attempt < MAX_ATTEMPTS {
                        tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
                    }
                }
            }
        }
        self.crowd.tally().lost(self.actor.class, purchase, last_error);
        None
    }

    async fn exchange(&mut self, method: Method, uri: &Uri, body: &Bytes) -> Result<Answer> {
        if let Some(sender) = self.sender.as_mut()
            && sender.ready().await.is_err()
        {
            self.sender = None;
        }
        let sender = match self.sender.as_mut() {
            Some(sender) => sender,
            None => {
                let mut sender = self.crowd.endpoint.connect_from(self.source()).await?;
                sender.ready().await.context("the connection closed at once")?;
                self.sender.insert(sender)
            }
        };
        Ok(send(sender, method, uri, self.crowd.endpoint.host(), self.auth, body).await?)
    }
}

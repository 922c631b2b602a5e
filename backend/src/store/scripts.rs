//! The sale's scripts (`lua/token.lua`, `purchase.lua`, `release.lua`, …)
//! and what their replies mean. A refusal is a value ([`ScriptRefusal`]),
//! not an error: a sold-out answer is a normal result of a sale.

use super::client::{Store, StoreError, parse_int};
use super::keys;

/// Why a script said no. Each maps onto one error code of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptRefusal {
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
    Rejected(ScriptRefusal),
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
    Rejected(ScriptRefusal),
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
    Rejected(ScriptRefusal),
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

/// A purchase token lives this long after use, answering retries with its order.
const USED_TOKEN_RETENTION_MS: u64 = 24 * 3600 * 1000;
impl Store {
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
                    .key(keys::user_tokens(activity))
                    .key(keys::tokens(activity))
                    .key(keys::live_tokens(activity))
                    .key(keys::legacy::user_token(activity, user))
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
            _ => Ok(TokenOutcome::Rejected(refusal(&reply)?)),
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
        let mut outcomes = self.purchase_call(activity, pay_timeout_ms, batch, false).await?;
        // Tokens the hash lacks may be in the keys of the layout before it
        // (`lua/purchase.lua`, "legacy calls"): those purchases go again, with
        // those keys. Only unknown tokens pay for this second call.
        let missing: Vec<usize> = (0..outcomes.len()).filter(|&i| outcomes[i].is_none()).collect();
        if !missing.is_empty() {
            let again: Vec<Purchase> = missing.iter().map(|&i| batch[i].clone()).collect();
            let retried = self.purchase_call(activity, pay_timeout_ms, &again, true).await?;
            for (i, outcome) in missing.into_iter().zip(retried) {
                outcomes[i] = outcome;
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| StoreError::Reply("the purchase script's legacy call answered NO_TOKEN".into())))
            .collect()
    }

    /// One call of the purchase script; `None` for a purchase whose token its
    /// hash lacks (`NO_TOKEN`, never answered by a `legacy` call).
    async fn purchase_call(
        &self,
        activity: u64,
        pay_timeout_ms: u64,
        batch: &[Purchase],
        legacy: bool,
    ) -> Result<Vec<Option<PurchaseOutcome>>, StoreError> {
        let a = activity;
        // EVALSHA by hand rather than `Script::invoke_async`, so that `WAIT`
        // can ride behind it in the same pipeline (`Store::acknowledged`).
        let mut call = redis::cmd("EVALSHA");
        call.arg(self.scripts.purchase.get_hash()).arg(8 + if legacy { batch.len() } else { 0 });
        call.arg(keys::activity(a))
            .arg(keys::inventory(a))
            .arg(keys::sold(a))
            .arg(keys::order_stream(a))
            .arg(keys::live_tokens(a))
            .arg(keys::user_limits(a))
            .arg(keys::user_orders(a))
            .arg(keys::tokens(a));
        if legacy {
            for p in batch {
                call.arg(keys::legacy::token(a, &p.token));
            }
        }
        call.arg(pay_timeout_ms).arg(USED_TOKEN_RETENTION_MS);
        for p in batch {
            call.arg(&p.user).arg(&p.token).arg(&p.quantity).arg(p.now_ms);
        }
        let replies: Vec<Vec<String>> = self.acknowledged(call, Some(&self.scripts.purchase)).await?;
        if replies.len() != batch.len() {
            return Err(StoreError::Reply(format!(
                "{} purchases, {} answers: {replies:?}",
                batch.len(),
                replies.len()
            )));
        }
        replies.iter().map(|reply| purchase_outcome(reply)).collect()
    }

    /// A buyer's order ids in an activity, oldest first: those kept in the
    /// layout before the hashes (a deployment upgraded mid-activity), then
    /// those in `seckill:user_order:{A}`.
    pub async fn user_order_ids(&self, activity: u64, user: &str) -> Result<Vec<String>, StoreError> {
        let (old, new): (Vec<String>, Option<String>) = self
            .bounded(|mut c| async move {
                redis::pipe()
                    .cmd("LRANGE")
                    .arg(keys::legacy::user_order(activity, user))
                    .arg(0)
                    .arg(-1)
                    .cmd("HGET")
                    .arg(keys::user_orders(activity))
                    .arg(user)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let new = new.unwrap_or_default();
        Ok(old.into_iter().chain(new.split(',').filter(|id| !id.is_empty()).map(str::to_owned)).collect())
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
            _ => Ok(ReleaseOutcome::Rejected(refusal(&reply)?)),
        }
    }
}

/// Maps one purchase's reply (`OK …`, `REPLAY …` or `{CODE, detail}`) onto
/// its outcome; `None` for `NO_TOKEN`.
fn purchase_outcome(reply: &[String]) -> Result<Option<PurchaseOutcome>, StoreError> {
    Ok(Some(match reply {
        [ok, order_id, remaining, sold, created, deadline, amount] if ok == "OK" => PurchaseOutcome::Accepted(Sale {
            order_id: order_id.clone(),
            remaining: parse_int(remaining)?,
            sold: parse_int(sold)?,
            created_at_ms: parse_int(created)?,
            pay_deadline_ms: parse_int(deadline)?,
            amount_cents: parse_int(amount)?,
        }),
        [replay, order_id] if replay == "REPLAY" => PurchaseOutcome::Replay { order_id: order_id.clone() },
        [code, _] if code == "NO_TOKEN" => return Ok(None),
        _ => PurchaseOutcome::Rejected(refusal(reply)?),
    }))
}

/// Maps a script's `{CODE, detail}` reply onto a `ScriptRefusal`.
fn refusal(reply: &[String]) -> Result<ScriptRefusal, StoreError> {
    let detail = reply.get(1).cloned().unwrap_or_default();
    Ok(match reply.first().map(String::as_str) {
        Some("NOT_FOUND") => ScriptRefusal::NotFound,
        Some("NOT_STARTED") => ScriptRefusal::NotStarted,
        Some("ENDED") => ScriptRefusal::Ended,
        Some("SOLD_OUT") => ScriptRefusal::SoldOut,
        Some("LIMIT_EXCEEDED") => ScriptRefusal::LimitExceeded,
        Some("TOKENS_EXHAUSTED") => ScriptRefusal::TokensExhausted { retry_after_ms: detail.parse().unwrap_or(1000) },
        Some("INVALID_TOKEN") => ScriptRefusal::InvalidToken(detail),
        Some("BAD_QUANTITY") => ScriptRefusal::BadQuantity,
        Some("BAD_ARG") => ScriptRefusal::BadArg(detail),
        _ => return Err(StoreError::Reply(format!("{reply:?}"))),
    })
}

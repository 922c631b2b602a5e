//! Payment callbacks from a simulated provider: signed with HMAC, possibly
//! duplicated, late and out of order. Each goes through the activity's
//! payment stream and is applied exactly once; a payment that cannot pay its
//! order is kept as needing a refund, never lost.

use std::time::Duration;

use seckill_api::payment::{PaymentCallback, SIGNATURE_HEADER, sign};
use seckill_tests::mariadb::MariaDb;
use seckill_tests::{ActivitySpec, Backend, RedisServer, eventually, jwt};
use serde_json::{Value, json};
use time::OffsetDateTime;

const SECRET: &str = "provider-secret";

/// The simulated payment provider: posts callbacks the way a real one does.
struct Provider<'a> {
    api: &'a Backend,
}

impl Provider<'_> {
    async fn post_raw(&self, body: &[u8], signature: Option<String>) -> (u16, Value) {
        let mut req = self.api.http.post(self.api.url("/api/payments/callback")).body(body.to_vec());
        if let Some(signature) = signature {
            req = req.header(SIGNATURE_HEADER, signature);
        }
        let res = req.header("content-type", "application/json").send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    /// Posts payment `payment_id` of `amount_cents` for `order_id`, signed.
    async fn pay(&self, payment_id: &str, order_id: &str, amount_cents: i64) -> (u16, Value) {
        let callback = PaymentCallback {
            payment_id: payment_id.into(),
            order_id: order_id.into(),
            amount_cents,
            paid_at: OffsetDateTime::now_utc(),
        };
        let body = serde_json::to_vec(&callback).unwrap();
        self.post_raw(&body, Some(sign(SECRET, &body))).await
    }
}

async fn payments(api: &Backend, admin: &str) -> Vec<Value> {
    let (status, list) = api.get("/admin/api/payments", admin).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

/// Waits until `payment_id` is applied; returns its record.
async fn applied(api: &Backend, admin: &str, payment_id: &str) -> Value {
    eventually(Duration::from_secs(15), &format!("payment {payment_id} applied"), || async {
        payments(api, admin).await.into_iter().find(|p| p["payment_id"] == payment_id)
    })
    .await
}

async fn order_status(api: &Backend, order: &str, user: &str) -> Value {
    api.get(&format!("/api/orders/{order}"), &jwt(user)).await.1["status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_callbacks_pay_each_order_once_and_the_rest_await_a_refund() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_with(&redis.url(), &["--payment-secret", SECRET]).await.unwrap();
    duplicated_and_reordered(&api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_on_mariadb() {
    let (redis, mariadb) = (RedisServer::start().unwrap(), MariaDb::start().await.unwrap());
    let api =
        Backend::start_on_db(&redis.url(), &mariadb.app_url(), None, &["--payment-secret", SECRET]).await.unwrap();
    duplicated_and_reordered(&api).await;
}

async fn duplicated_and_reordered(api: &Backend) {
    let admin = api.admin_token().await;
    let provider = Provider { api };
    let a = api.create_activity(ActivitySpec::live(10, 1)).await;
    let (alice, bob, carol) = (api.buy(a, "alice", 1).await, api.buy(a, "bob", 1).await, api.buy(a, "carol", 1).await);
    let price = api.get(&format!("/api/orders/{alice}"), &jwt("alice")).await.1["amount_cents"].as_i64().unwrap();

    // The same callback three times, the second while the first is still queued.
    for _ in 0..3 {
        let (status, body) = provider.pay("pay-alice", &alice, price).await;
        assert_eq!((status, body["status"].as_str()), (202, Some("queued")), "{body}");
    }
    let record = applied(api, &admin, "pay-alice").await;
    assert_eq!((record["outcome"].as_str(), record["order_id"].as_str()), (Some("applied"), Some(alice.as_str())));
    assert_eq!(order_status(api, &alice, "alice").await, "paid");

    // Bob paid twice (two payment ids), the later one's callback first: one pays, one is refunded.
    provider.pay("pay-bob-2", &bob, price).await;
    provider.pay("pay-bob-1", &bob, price).await;
    let (second, first) = (applied(api, &admin, "pay-bob-2").await, applied(api, &admin, "pay-bob-1").await);
    assert_eq!(second["outcome"], "applied", "the first to arrive pays: {second}");
    assert_eq!(first["outcome"], "refund_needed", "{first}");
    assert!(first["reason"].as_str().unwrap().contains("paid already"), "{first}");

    // A payment for a different amount pays nothing.
    provider.pay("pay-carol-short", &carol, price - 1).await;
    let short = applied(api, &admin, "pay-carol-short").await;
    assert_eq!(short["outcome"], "refund_needed");
    assert!(short["reason"].as_str().unwrap().contains(&format!("paid {} cents", price - 1)), "{short}");
    assert_eq!(order_status(api, &carol, "carol").await, "pending_payment");

    // Exactly one record per payment id, however often it was posted.
    let all = payments(api, &admin).await;
    assert_eq!(all.len(), 4, "{all:?}");
    let (_, refunds) = api.get("/admin/api/payments?outcome=refund_needed", &admin).await;
    assert_eq!(refunds.as_array().unwrap().len(), 2, "{refunds}");
    // And the buyer's own pay call on a paid order stays idempotent.
    let (status, order) = api.post(&format!("/api/orders/{alice}/pay"), &jwt("alice"), None).await;
    assert_eq!((status, order["status"].as_str()), (200, Some("paid")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_after_the_deadline_is_kept_for_a_refund_and_the_stock_stays_released() {
    let redis = RedisServer::start().unwrap();
    let flags = ["--payment-secret", SECRET, "--pay-timeout-secs", "1", "--sweep-interval-ms", "10"];
    let api = Backend::start_with(&redis.url(), &flags).await.unwrap();
    let admin = api.admin_token().await;
    let a = api.create_activity(ActivitySpec::live(1, 1)).await;
    let order = api.buy(a, "late-payer", 1).await;
    let price = api.get(&format!("/api/orders/{order}"), &jwt("late-payer")).await.1["amount_cents"].as_i64().unwrap();
    eventually(Duration::from_secs(15), "the unpaid order to expire", || async {
        (order_status(&api, &order, "late-payer").await == "expired").then_some(())
    })
    .await;
    let (status, _) = Provider { api: &api }.pay("pay-late", &order, price).await;
    assert_eq!(status, 202, "a late callback is still taken");
    let late = applied(&api, &admin, "pay-late").await;
    assert_eq!(late["outcome"], "refund_needed");
    assert!(late["reason"].as_str().unwrap().contains("expired before the payment arrived"), "{late}");
    assert_eq!(order_status(&api, &order, "late-payer").await, "expired", "a late payment never revives an order");
    let activity = api.get(&format!("/api/activities/{a}"), "").await.1;
    assert_eq!(activity["remaining"], 1, "the released unit stays for sale: {activity}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_malformed_or_unknown_callbacks_are_refused_and_change_nothing() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_with(&redis.url(), &["--payment-secret", SECRET]).await.unwrap();
    let admin = api.admin_token().await;
    let provider = Provider { api: &api };
    let a = api.create_activity(ActivitySpec::live(10, 1)).await;
    let order = api.buy(a, "dave", 1).await;
    let callback =
        json!({"payment_id": "p1", "order_id": order, "amount_cents": 100, "paid_at": "2026-12-05T10:00:00Z"});
    let body = serde_json::to_vec(&callback).unwrap();
    let code = |answer: (u16, Value)| (answer.0, answer.1["code"].as_str().map(str::to_owned));
    assert_eq!(code(provider.post_raw(&body, None).await), (401, Some("unauthorized".into())));
    let forged = seckill_api::payment::sign("not-the-secret", &body);
    assert_eq!(code(provider.post_raw(&body, Some(forged)).await), (401, Some("unauthorized".into())));
    // Signed, but the body changed on the way.
    let mut changed = callback.clone();
    changed["amount_cents"] = json!(1);
    let signature = sign(SECRET, &body);
    assert_eq!(code(provider.post_raw(&serde_json::to_vec(&changed).unwrap(), Some(signature)).await).0, 401);
    for bad in [
        json!({"payment_id": "p1", "order_id": order, "amount_cents": 100}),
        json!({"payment_id": "p1", "order_id": order, "amount_cents": -5, "paid_at": "2026-12-05T10:00:00Z"}),
        json!({"payment_id": "../x", "order_id": order, "amount_cents": 100, "paid_at": "2026-12-05T10:00:00Z"}),
        json!({"payment_id": "p1", "order_id": "nonsense", "amount_cents": 100, "paid_at": "2026-12-05T10:00:00Z"}),
        json!({"payment_id": "p1", "order_id": order, "amount_cents": 100, "paid_at": "2026-12-05T10:00:00Z", "x": 1}),
    ] {
        let body = serde_json::to_vec(&bad).unwrap();
        assert_eq!(
            code(provider.post_raw(&body, Some(sign(SECRET, &body))).await),
            (400, Some("bad_request".into())),
            "{bad}"
        );
    }
    let unknown = order.replacen(&a.to_string(), "987654", 1);
    assert_eq!(provider.pay("p2", &unknown, 100).await.0, 404, "an activity that does not exist");
    assert!(payments(&api, &admin).await.is_empty(), "nothing was queued");

    // Without a payment secret, callbacks are refused as unavailable.
    let api2 = Backend::start(&redis.url()).await.unwrap();
    let (status, body) = Provider { api: &api2 }.pay("p3", &order, 100).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")), "{body}");
}

/// `cargo xtask pay`, the simulated provider of the README, against a real backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_provider_pays_an_order_through_the_api() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_with(&redis.url(), &["--payment-secret", SECRET]).await.unwrap();
    let admin = api.admin_token().await;
    let a = api.create_activity(ActivitySpec::live(10, 1)).await;
    let order = api.buy(a, "erin", 1).await;
    let out = std::process::Command::new(seckill_tests::xtask_binary())
        .args(["pay", &order, "--times", "3", "--payment-id", "sim-erin", "--to", &api.addr.to_string()])
        .env("SECKILL_PAYMENT_SECRET", SECRET)
        .env("SECKILL_ADMIN_PASSWORD", seckill_tests::ADMIN_PASSWORD)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches(": 202 ").count(), 3, "three callbacks, all taken: {stdout}");
    assert_eq!(applied(&api, &admin, "sim-erin").await["outcome"], "applied");
    assert_eq!(order_status(&api, &order, "erin").await, "paid");
    assert_eq!(payments(&api, &admin).await.len(), 1, "one payment, however often it was posted");
}

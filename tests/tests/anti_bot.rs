//! 接口防刷: the proof of work an operator switches on for the token step.
//! Off, a token needs a login; on, the client solves its own challenge
//! (bound to the activity, the user and the minute) first; every backend
//! follows the switch within a second.

use std::time::Duration;

use seckill_api::pow::{self, POW_HEADER};
use seckill_tests::{ActivitySpec, Backend, RedisServer, eventually, jwt};
use serde_json::{Value, json};

async fn token(api: &Backend, a: u64, user: &str, proof: Option<&str>) -> (u16, Value) {
    let mut req = api.http.post(api.url(&format!("/api/activities/{a}/token"))).bearer_auth(jwt(user));
    if let Some(proof) = proof {
        req = req.header(POW_HEADER, proof);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn switch(api: &Backend, admin: &str, bits: u32) -> u16 {
    let res = api.http.put(api.url("/admin/api/anti-bot")).bearer_auth(admin).json(&json!({"pow_bits": bits}));
    res.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_needs_a_solved_challenge_once_an_operator_asks_for_one() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let other = Backend::start(&redis.url()).await.unwrap();
    let admin = api.admin_token().await;
    let a = api.create_activity(ActivitySpec::live(100, 1)).await;
    assert_eq!(token(&api, a, "before", None).await.0, 200, "off: a login is enough");

    assert_eq!(switch(&api, &admin, 25).await, 400, "more than 24 bits is refused");
    assert_eq!(switch(&api, &admin, 12).await, 200);
    let (status, body) = token(&api, a, "bot", None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");
    assert!(body["message"].as_str().unwrap().contains(&format!("/api/activities/{a}/challenge")), "{body}");
    // The other backend reads the switch from Redis within a second.
    eventually(Duration::from_secs(10), "the other backend to ask for proof", || async {
        (token(&other, a, "bot2", None).await.0 == 403).then_some(())
    })
    .await;

    let (status, challenge) = api.get(&format!("/api/activities/{a}/challenge"), &jwt("human")).await;
    assert_eq!((status, challenge["bits"].as_u64()), (200, Some(12)), "{challenge}");
    let c = challenge["challenge"].as_str().unwrap();
    let proof = format!("{c}:{}", pow::solve(c, 12));
    assert_eq!(token(&other, a, "someone-else", Some(&proof)).await.0, 403, "a challenge is its user's");
    let weak = (0u64..).map(|n| n.to_string()).find(|n| pow::zero_bits(c, n) < 12).unwrap();
    assert_eq!(
        token(&api, a, "human", Some(&format!("{c}:{weak}"))).await.0,
        403,
        "a nonce that does not meet the bits"
    );
    let (status, issued) = token(&other, a, "human", Some(&proof)).await;
    assert_eq!(status, 200, "any backend checks any backend's challenge: {issued}");
    assert!(issued["token"].is_string());
    assert_eq!(api.get("/api/activities/987654/challenge", &jwt("human")).await.0, 404);
    assert_eq!(api.get(&format!("/api/activities/{a}/challenge"), "").await.0, 401, "a challenge is for a buyer");

    let (_, checklist) = api.get("/admin/api/checklist", &admin).await;
    let item = checklist.as_array().unwrap().iter().find(|i| i["id"] == "security.anti_abuse").unwrap().clone();
    assert_eq!(item["status"], "ok", "{item}");
    assert!(item["evidence"].as_str().unwrap().contains("12 zero bits"), "{item}");

    assert_eq!(switch(&api, &admin, 0).await, 200);
    assert_eq!(token(&api, a, "after", None).await.0, 200, "off again");
    let (_, setting) = api.get("/admin/api/anti-bot", &admin).await;
    assert_eq!(setting, json!({"pow_bits": 0}));
}

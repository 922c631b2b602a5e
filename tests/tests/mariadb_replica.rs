//! MySQL read/write split on real MariaDB replication (two `mariadbd` on
//! loopback, primary → replica): order lists are read on the replica, a
//! buyer's own order and every write on the primary; a replica that falls
//! behind or dies is fallen back from, and returned to once it catches up.
//!
//! A row only the replica has (written there as root, which its `read_only`
//! lets through) tells which server a list was read from.

use std::time::Duration;

use seckill_tests::mariadb::MariaDb;
use seckill_tests::{ActivitySpec, Backend, RedisServer, eventually, jwt};
use serde_json::Value;

/// An order row on the replica alone.
const REPLICA_ONLY: &str = "replica-only-order";

async fn listed(api: &Backend, admin: &str, a: u64) -> Vec<String> {
    let (status, page) = api.get(&format!("/admin/api/orders?activity_id={a}&limit=100"), admin).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
}

async fn read_split(api: &Backend, admin: &str) -> Value {
    let (_, checklist) = api.get("/admin/api/checklist", admin).await;
    checklist.as_array().unwrap().iter().find(|i| i["id"] == "infra.mysql_rw_split").unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_lists_read_the_replica_and_fall_back_to_the_primary_when_it_lags_or_dies() {
    let primary = MariaDb::start_primary().await.unwrap();
    let replica = MariaDb::start_replica_of(&primary).await.unwrap();
    let redis = RedisServer::start().unwrap();
    let flags = ["--database-replica-url", &replica.app_url(), "--database-replica-max-lag-ms", "1000"];
    let api = Backend::start_on_db(&redis.url(), &primary.app_url(), None, &flags).await.unwrap();
    let admin = api.admin_token().await;
    let a = api.create_activity(ActivitySpec::live(10, 1)).await;
    let sold = api.buy(a, "first-buyer", 1).await;

    // The backend's migrations replicated, and its heartbeat (the lag watch,
    // every half second) found the replica close enough to read from; the
    // worker's row replicated too. (A list alone would not tell: while the
    // replica is not read from, the primary answers it.)
    let split = eventually(Duration::from_secs(30), "the replica to serve reads", || async {
        let split = read_split(&api, &admin).await;
        (split["status"] == "ok").then_some(split)
    })
    .await;
    eventually(Duration::from_secs(30), "the order to reach the replica's list", || async {
        listed(&api, &admin, a).await.contains(&sold).then_some(())
    })
    .await;
    assert!(split["evidence"].as_str().unwrap().contains("read from the replica"), "{split}");

    // A row the replica alone holds shows in the list: the list is read there.
    let mut root = replica.root().await.unwrap();
    let insert = format!(
        "INSERT INTO seckill.orders (order_id, activity_id, user_id, quantity, amount_cents, status, created_at_ms, \
         pay_deadline_ms, updated_at_ms, event_seq, stock_released) \
         VALUES ('{REPLICA_ONLY}', {a}, 'ghost', 1, 100, 'paid', 1, 1, 1, 1, 0)"
    );
    sqlx::raw_sql(&insert).execute(&mut root).await.unwrap();
    assert!(listed(&api, &admin, a).await.contains(&REPLICA_ONLY.to_owned()));
    // A single order is read where it was written.
    let (status, _) = api.get(&format!("/api/orders/{REPLICA_ONLY}"), &jwt("ghost")).await;
    assert_eq!(status, 404, "a buyer's own order is read on the primary");

    // Replication stops: once the replica is more than a second behind, lists come from the primary.
    replica.stop_replication().await.unwrap();
    eventually(Duration::from_secs(15), "lists to fall back to the primary", || async {
        (!listed(&api, &admin, a).await.contains(&REPLICA_ONLY.to_owned())).then_some(())
    })
    .await;
    let split = read_split(&api, &admin).await;
    assert_eq!(split["status"], "warning", "{split}");
    assert!(split["evidence"].as_str().unwrap().contains("reads fall back to the primary"), "{split}");
    let during = api.buy(a, "buyer-during-lag", 1).await;
    eventually(Duration::from_secs(30), "the new order in the list, from the primary", || async {
        listed(&api, &admin, a).await.contains(&during).then_some(())
    })
    .await;

    // Caught up: back on the replica, which has the new order now too.
    replica.start_replication().await.unwrap();
    eventually(Duration::from_secs(15), "lists to read the replica again", || async {
        let ids = listed(&api, &admin, a).await;
        (ids.contains(&REPLICA_ONLY.to_owned()) && ids.contains(&during)).then_some(())
    })
    .await;

    // The replica dies: lists still answer, from the primary, at once.
    drop(root);
    drop(replica);
    let ids = listed(&api, &admin, a).await;
    assert!(ids.contains(&sold) && ids.contains(&during) && !ids.contains(&REPLICA_ONLY.to_owned()), "{ids:?}");
    eventually(Duration::from_secs(15), "the checklist to see the replica gone", || async {
        let split = read_split(&api, &admin).await;
        split["evidence"].as_str().unwrap().contains("not answering").then_some(())
    })
    .await;
}

//! `cargo xtask backup` and `cargo xtask restore` against real servers: a
//! backend process sells on Redis and an order DB (SQLite, or MariaDB through
//! `mariadb-dump`), the backup saves both, the restore puts them into fresh
//! servers, and a backend started on those has every order, the same stock
//! and sold counts, reconciles with no drift and sells on. A target that is
//! not empty is refused without `--yes`, and an SQLite file a backend holds
//! open is refused even with it.
//!
//! The tests run the xtask binary `cargo xtask …` builds
//! (`target/<profile>/xtask`; `cargo build -p xtask` builds it alone).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use seckill_tests::mariadb::MariaDb;
use seckill_tests::redis_topology::{RedisCluster, SentinelRedis};
use seckill_tests::{
    ActivitySpec, BackendProcess, RedisServer, TempDir, admin_token_at, create_activity_at, eventually, jwt,
    retry_unavailable, xtask_binary,
};
use serde_json::{Value, json};

/// Runs `cargo xtask <args>` (the binary), with the stores named only by flags.
fn run_xtask(args: &[&str]) -> Output {
    let out = Command::new(xtask_binary())
        .args(args)
        .env_remove("SECKILL_REDIS_URL")
        .env_remove("SECKILL_DATABASE_URL")
        .output()
        .expect("xtask runs");
    eprintln!(
        "$ xtask {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `cargo xtask backup` into `out`; returns the backup directory and its manifest.
fn backup(redis_url: &str, database_url: &str, out: &Path) -> (PathBuf, Value) {
    let before: Vec<_> = std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).collect();
    let result = run_xtask(&[
        "backup",
        "--redis-url",
        redis_url,
        "--database-url",
        database_url,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(result.status.success(), "backup failed: {}", stderr(&result));
    let made: Vec<PathBuf> =
        std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).filter(|p| !before.contains(p)).collect();
    assert_eq!(made.len(), 1, "one new directory, no partial one left: {made:?}");
    let dir = made[0].clone();
    assert!(!dir.file_name().unwrap().to_string_lossy().starts_with('.'), "{} is complete", dir.display());
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    (dir, manifest)
}

fn restore(dir: &Path, redis_url: &str, database_url: &str, yes: bool) -> Output {
    let mut args = vec!["restore", dir.to_str().unwrap(), "--redis-url", redis_url, "--database-url", database_url];
    if yes {
        args.push("--yes");
    }
    run_xtask(&args)
}

/// A buyer's and an operator's calls to a backend process.
struct Api {
    http: reqwest::Client,
    addr: SocketAddr,
    admin: String,
}

impl Api {
    async fn new(addr: SocketAddr) -> Self {
        let http = reqwest::Client::new();
        let admin = admin_token_at(&http, addr).await;
        Self { http, addr, admin }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn call(&self, method: reqwest::Method, path: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
        retry_unavailable(|| async {
            let mut req = self.http.request(method.clone(), self.url(path)).bearer_auth(bearer);
            if let Some(body) = &body {
                req = req.json(body);
            }
            let res = req.send().await.expect("the backend answers");
            (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
        })
        .await
    }

    async fn admin_get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, &self.admin, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Token, then purchase of `quantity`; returns (status, body) of whichever failed, or of the purchase.
    async fn try_buy(&self, a: u64, user: &str, quantity: i64) -> (u16, Value) {
        let (status, body) =
            self.call(reqwest::Method::POST, &format!("/api/activities/{a}/token"), &jwt(user), None).await;
        if status != 200 {
            return (status, body);
        }
        let purchase = json!({"token": body["token"], "quantity": quantity});
        self.call(reqwest::Method::POST, &format!("/api/activities/{a}/purchase"), &jwt(user), Some(purchase)).await
    }

    async fn buy(&self, a: u64, user: &str, quantity: i64) -> String {
        let (status, body) = self.try_buy(a, user, quantity).await;
        assert_eq!(status, 202, "{user} buys {quantity} of {a}: {body}");
        body["order_id"].as_str().unwrap().to_owned()
    }

    async fn order_action(&self, order: &str, user: &str, action: &str) {
        let path = format!("/api/orders/{order}/{action}");
        let (status, body) = self.call(reqwest::Method::POST, &path, &jwt(user), None).await;
        assert_eq!(status, 200, "{action} {order}: {body}");
    }

    /// Every order row: id → (user, quantity, status).
    async fn orders(&self) -> BTreeMap<String, (String, i64, String)> {
        let (mut all, mut cursor) = (BTreeMap::new(), String::new());
        loop {
            let page = self.admin_get(&format!("/admin/api/orders?limit=500&cursor={cursor}")).await;
            for o in page["items"].as_array().unwrap() {
                let row = (
                    o["user_id"].as_str().unwrap().to_owned(),
                    o["quantity"].as_i64().unwrap(),
                    o["status"].as_str().unwrap().to_owned(),
                );
                all.insert(o["order_id"].as_str().unwrap().to_owned(), row);
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return all,
            }
        }
    }

    /// Waits until the worker has written `n` rows and no order waits in a stream.
    async fn wait_for_rows(&self, n: usize, activities: &[u64]) -> BTreeMap<String, (String, i64, String)> {
        eventually(Duration::from_secs(30), &format!("{n} order rows"), || async {
            let orders = self.orders().await;
            for a in activities {
                let r = self.admin_get(&format!("/admin/api/activities/{a}/reconciliation")).await;
                if r["stream_orders"].as_i64() != Some(0) {
                    return None;
                }
            }
            (orders.len() == n).then_some(orders)
        })
        .await
    }

    /// (remaining, sold) as buyers read them.
    async fn counts(&self, a: u64) -> (i64, i64) {
        let (status, body) =
            self.call(reqwest::Method::GET, &format!("/api/activities/{a}"), &jwt("reader"), None).await;
        assert_eq!(status, 200, "{body}");
        (body["remaining"].as_i64().unwrap(), body["sold"].as_i64().unwrap())
    }

    /// Reconciliation passes: no drift, the invariant holds, no dead letters.
    async fn assert_reconciles(&self, a: u64) {
        let r = self.admin_get(&format!("/admin/api/activities/{a}/reconciliation")).await;
        assert_eq!(r["drift"], 0, "activity {a}: {r}");
        assert_eq!(r["ok"], true, "activity {a}: {r}");
    }
}

fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}/orders.db", dir.0.display())
}

/// What the manifest says of activity `a`: (remaining, sold).
fn manifest_counts(manifest: &Value, a: u64) -> (i64, i64) {
    let activity = manifest["activities"].as_array().unwrap().iter().find(|x| x["id"] == a).expect("listed");
    (activity["remaining"].as_i64().unwrap(), activity["sold"].as_i64().unwrap())
}

/// The sale every round trip runs: three activities (their keys on more than
/// one master of a Cluster), six orders, one paid, one cancelled.
async fn sell(api: &Api) -> [u64; 3] {
    let a1 = create_activity_at(&api.http, api.addr, ActivitySpec::live(10, 3)).await;
    let a2 = create_activity_at(&api.http, api.addr, ActivitySpec::live(5, 2)).await;
    let a3 = create_activity_at(&api.http, api.addr, ActivitySpec::live(4, 1)).await;
    let alice = api.buy(a1, "alice", 2).await;
    let bob = api.buy(a1, "bob", 1).await;
    api.buy(a1, "carol", 3).await;
    api.buy(a2, "alice", 1).await;
    api.buy(a2, "dave", 2).await;
    api.buy(a3, "frank", 1).await;
    api.wait_for_rows(6, &[a1, a2, a3]).await;
    api.order_action(&alice, "alice", "pay").await;
    api.order_action(&bob, "bob", "cancel").await;
    [a1, a2, a3]
}

/// Backs up what `sell` left in `redis_url` and `database_url` (while the
/// backend runs), restores it into `target_redis` and `target_db`, and checks
/// that a backend on those has it all and sells on. Returns the backup.
async fn round_trip(
    redis_url: &str,
    database_url: &str,
    target_redis: &str,
    target_db: &str,
    out: &TempDir,
) -> PathBuf {
    let backend = BackendProcess::start(redis_url, database_url, &[]).await.unwrap();
    let api = Api::new(backend.addr).await;
    let activities = sell(&api).await;
    let [a1, _, a3] = activities;
    let orders = api.wait_for_rows(6, &activities).await;
    let mut counts = Vec::new();
    for a in activities {
        counts.push(api.counts(a).await);
    }
    // Bob's unit went back: a1 sold alice's 2 and carol's 3, a2 alice's 1 and dave's 2, a3 frank's 1.
    assert_eq!(counts, [(5, 5), (2, 3), (3, 1)]);

    let (dir, manifest) = backup(redis_url, database_url, &out.0);
    let listed: Vec<(i64, i64)> = activities.iter().map(|a| manifest_counts(&manifest, *a)).collect();
    assert_eq!(listed, counts, "the manifest's counts");
    let by_status = &manifest["order_db"]["orders_by_status"];
    assert_eq!(by_status["paid"], json!({"orders": 1, "quantity": 2}), "{manifest}");
    assert_eq!(by_status["cancelled"], json!({"orders": 1, "quantity": 1}), "{manifest}");
    assert_eq!(by_status["pending_payment"], json!({"orders": 4, "quantity": 7}), "{manifest}");
    assert_eq!(manifest["redis"]["keys_from"], "snapshot");
    assert!(manifest["redis"]["keys"].as_i64().unwrap() > 0);
    for (name, file) in manifest["files"].as_object().unwrap() {
        assert!(dir.join(name).is_file(), "{name} listed and present");
        assert_eq!(file["sha256"].as_str().unwrap().len(), 64);
    }
    let masters = manifest["redis"]["masters"].as_array().unwrap().len();
    for i in 0..masters {
        assert!(dir.join(format!("redis-{i}.rdb")).is_file(), "a snapshot of each of the {masters} masters");
    }
    let password =
        database_url.split_once("://").and_then(|(_, r)| r.split_once('@')).and_then(|(i, _)| i.split_once(':'));
    if let Some((_, password)) = password {
        assert!(!manifest.to_string().contains(password), "no password in the manifest");
    }
    drop(backend);

    // The restore into fresh servers, then a backend on them.
    let result = restore(&dir, target_redis, target_db, false);
    assert!(result.status.success(), "restore failed: {}", stderr(&result));
    let restored = BackendProcess::start(target_redis, target_db, &[]).await.unwrap();
    let api = Api::new(restored.addr).await;
    assert_eq!(api.orders().await, orders, "every order, with its status");
    let mut now = Vec::new();
    for a in activities {
        now.push(api.counts(a).await);
        api.assert_reconciles(a).await;
    }
    assert_eq!(now, counts, "the same stock and sold counts");

    // It sells on where the backup left off: carol and frank are at their limits,
    // a newcomer buys, a restored order can be paid.
    for (a, user) in [(a1, "carol"), (a3, "frank")] {
        let (status, body) = api.try_buy(a, user, 1).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("limit_exceeded")), "{user}: {body}");
    }
    api.buy(a1, "erin", 1).await;
    let carol = orders.iter().find(|(_, (user, _, _))| user == "carol").unwrap().0;
    api.order_action(carol, "carol", "pay").await;
    api.wait_for_rows(7, &activities).await;
    assert_eq!(api.counts(a1).await, (4, 6));
    api.assert_reconciles(a1).await;
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_into_fresh_servers_has_every_order_and_count() {
    let (redis, db, out) = (RedisServer::start().unwrap(), TempDir::new("backup-db"), TempDir::new("backups"));
    let (target_redis, target_db) = (RedisServer::start().unwrap(), TempDir::new("restore-db"));
    let dir = round_trip(&redis.url(), &sqlite_url(&db), &target_redis.url(), &sqlite_url(&target_db), &out).await;
    assert!(dir.join("orders.db").is_file() && dir.join("redis-keys.jsonl").is_file());
    // The backup is recorded where the checklist looks for it.
    let mut conn = redis.conn().await;
    let last: BTreeMap<String, String> =
        redis::cmd("HGETALL").arg("seckill:backup:last").query_async(&mut conn).await.unwrap();
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(last.get("ok").map(String::as_str), Some("1"), "{last:?}");
    assert_eq!(last.get("dir").map(PathBuf::from), Some(dir.canonicalize().unwrap()), "{last:?}");
    assert_eq!(last.get("at_ms").and_then(|v| v.parse::<i64>().ok()), manifest["created_at_ms"].as_i64());
    // And the checklist's 数据备份策略 reads it.
    let api = seckill_tests::Backend::start(&redis.url()).await.unwrap();
    let admin = api.admin_token().await;
    let (_, checklist) = api.get("/admin/api/checklist", &admin).await;
    let item = checklist.as_array().unwrap().iter().find(|i| i["id"] == "dr.backup").unwrap().clone();
    let evidence = item["evidence"].as_str().unwrap();
    assert!(evidence.contains("last backup 0 min ago") || evidence.contains("last backup 1 min ago"), "{item}");
    assert!(evidence.contains(&dir.canonicalize().unwrap().display().to_string()), "{item}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_backup_goes_through_mariadb_dump_and_back() {
    let (source, target) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (source, target) = (source.unwrap(), target.unwrap());
    let (redis, target_redis) = (RedisServer::start().unwrap(), RedisServer::start().unwrap());
    let out = TempDir::new("backups");
    // As production runs: the application's own account, rights on its database only.
    let dir = round_trip(&redis.url(), &source.app_url(), &target_redis.url(), &target.app_url(), &out).await;
    let text = std::fs::read_to_string(dir.join("orders.sql")).unwrap();
    assert!(text.contains("CREATE TABLE `orders`") && text.contains("INSERT INTO `orders`"), "a mariadb-dump file");
}

/// Every master of a Cluster is saved, and each key goes back to the master of its slot
/// in another Cluster; the master Sentinel names is saved, and restored into one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_and_sentinel_backups_restore_into_any_shape() {
    let (cluster, target_cluster) = tokio::join!(
        tokio::task::spawn_blocking(|| RedisCluster::start().unwrap()),
        tokio::task::spawn_blocking(|| RedisCluster::start().unwrap())
    );
    let (cluster, target_cluster) = (cluster.unwrap(), target_cluster.unwrap());
    let (db, target_db, out) = (TempDir::new("cluster-db"), TempDir::new("cluster-restore"), TempDir::new("backups"));
    let dir = round_trip(&cluster.url(), &sqlite_url(&db), &target_cluster.url(), &sqlite_url(&target_db), &out).await;
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["redis"]["kind"], "cluster");
    assert_eq!(manifest["redis"]["masters"].as_array().unwrap().len(), 3, "{manifest}");
    drop((cluster, target_cluster));

    let sentinel = tokio::task::spawn_blocking(|| SentinelRedis::start().unwrap()).await.unwrap();
    let (target, db, target_db) = (RedisServer::start().unwrap(), TempDir::new("sentinel-db"), TempDir::new("single"));
    let dir = round_trip(&sentinel.url(), &sqlite_url(&db), &target.url(), &sqlite_url(&target_db), &out).await;
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["redis"]["kind"], "sentinel");
    let master = format!("127.0.0.1:{}", sentinel.master_port().unwrap());
    assert_eq!(manifest["redis"]["masters"], json!([master]), "the master the sentinels name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_target_that_is_not_empty_without_yes() {
    let (redis, db, out) = (RedisServer::start().unwrap(), TempDir::new("refuse-db"), TempDir::new("backups"));
    let database_url = sqlite_url(&db);
    let mut backend = BackendProcess::start(&redis.url(), &database_url, &[]).await.unwrap();
    let api = Api::new(backend.addr).await;
    let a = create_activity_at(&api.http, api.addr, ActivitySpec::live(10, 5)).await;
    let kept = api.buy(a, "grace", 2).await;
    api.wait_for_rows(1, &[a]).await;
    let (dir, _) = backup(&redis.url(), &database_url, &out.0);
    // A sale after the backup: what a restore would undo.
    let later = api.buy(a, "heidi", 3).await;
    api.wait_for_rows(2, &[a]).await;

    let result = restore(&dir, &redis.url(), &database_url, false);
    assert!(!result.status.success(), "a restore over live data needs --yes");
    let message = stderr(&result);
    for said in ["not empty", "keys", "seckill:", "2 order rows", "--yes"] {
        assert!(message.contains(said), "the refusal says {said:?}: {message}");
    }
    // With --yes, but the backend still holds the SQLite file: refused too, before any change.
    let result = restore(&dir, &redis.url(), &database_url, true);
    assert!(!result.status.success(), "a restore under a running backend");
    let message = stderr(&result);
    assert!(message.contains("is open in pid") && message.contains("stop the backend"), "{message}");
    let orders = api.orders().await;
    assert!(orders.contains_key(&kept) && orders.contains_key(&later), "nothing changed: {orders:?}");
    assert_eq!(api.counts(a).await, (5, 5));

    // Stopped, the backend's stores are put back as the backup had them.
    backend.kill();
    let result = restore(&dir, &redis.url(), &database_url, true);
    assert!(result.status.success(), "restore --yes: {}", stderr(&result));
    let kept_aside = std::fs::read_dir(&db.0)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().starts_with("orders.db.before-restore-"));
    assert!(kept_aside, "the replaced order DB is kept beside it");
    backend.restart().await.unwrap();
    let api = Api::new(backend.addr).await;
    let orders = api.orders().await;
    assert_eq!(orders.keys().collect::<Vec<_>>(), [&kept], "the later sale is undone");
    assert_eq!(api.counts(a).await, (8, 2));
    api.assert_reconciles(a).await;
}

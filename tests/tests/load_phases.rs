//! `seckill-load`'s two phases straight at a backend, as the bench scripts
//! drive it: every buyer gets a token and buys once, the tool's invariant
//! check holds, and with `--database-url` every accepted purchase is an
//! order row. What the benchmarks' figures rest on, checked in the suite.

use seckill_tests::{Backend, RedisServer, run_load};
use serde_json::Value;

const BUYERS: u64 = 1_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_buyer_buys_once_and_every_purchase_is_a_row() {
    let redis = RedisServer::start().unwrap();
    let backend = Backend::start(&redis.url()).await.unwrap();
    let args = [
        format!("--url={}", backend.url("")),
        format!("--database-url={}", backend.database_url),
        format!("--buyers={BUYERS}"),
        "--connections=16".to_owned(),
        "--rows-deadline=60".to_owned(),
        "--json".to_owned(),
    ];
    let output = run_load(args.to_vec()).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let context = format!("--- stdout\n{stdout}\n--- stderr\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{context}");
    assert!(stdout.contains("invariant: OK") && stdout.contains("order rows: OK"), "{context}");
    let phases: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect();
    let phase = |name: &str| phases.iter().find(|p| p["phase"] == name).unwrap_or_else(|| panic!("{name}: {context}"));
    // Every buyer is answered with a token and then an order, except that on
    // a slow machine a call may outlast the store's timeout (`503`): the tool
    // does not retry those, and its checks above tie `sold` to the 202s.
    for (name, ok) in [("token", "200"), ("purchase", "202")] {
        let statuses = phase(name)["statuses"].as_object().unwrap().clone();
        assert!(statuses.keys().all(|k| k == ok || k == "503 unavailable"), "{name}: {statuses:?}");
        assert!(statuses[ok].as_u64().unwrap() > 0, "{name}: {statuses:?}");
    }
    let answered: u64 = phase("purchase")["statuses"].as_object().unwrap().values().filter_map(Value::as_u64).sum();
    assert_eq!(answered, phase("token")["statuses"]["200"].as_u64().unwrap(), "every buyer with a token bought");
}

//! The hot queries are answered from indexes, on SQLite and on MariaDB, with
//! a table of some thousands of orders; and dropping an index the plan needs
//! is seen (so the check can fail).

use seckill_backend::db::{Db, NewOrder};
use seckill_tests::TempDir;
use seckill_tests::mariadb::MariaDb;
use sqlx::Connection as _;

const ROWS: usize = 3000;

async fn fill(db: &Db) {
    let orders: Vec<NewOrder> = (0..ROWS)
        .map(|i| NewOrder {
            order_id: format!("order-{i:05}"),
            activity_id: (i % 20) as u64,
            user_id: format!("user-{}", i % 700),
            quantity: 1,
            amount_cents: 100,
            created_at_ms: 1_700_000_000_000 + i as i64,
            pay_deadline_ms: 1_800_000_000_000 + i as i64,
            event_seq: i as i64,
        })
        .collect();
    for chunk in orders.chunks(500) {
        db.insert_orders(chunk, 1_700_000_000_000).await.unwrap();
    }
}

/// Every hot query's plan uses an index; then, after `drop_index` (of
/// `orders_by_deadline`), the sweeper's query is seen scanning.
async fn plans_use_their_indexes(url: &str, analyze: Option<&str>, drop_index: &str) {
    let db = Db::connect(url).await.unwrap();
    fill(&db).await;
    // Db::connect installed sqlx's drivers; a connection of the test's own for the DDL.
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    if let Some(analyze) = analyze {
        sqlx::raw_sql(analyze).execute(&mut conn).await.unwrap();
    }
    let plans = db.query_plans().await.unwrap();
    assert_eq!(plans.len(), 7);
    for plan in &plans {
        eprintln!("{}: {}", plan.name, plan.plan);
        assert!(plan.indexed, "{} is not answered from an index: {}", plan.name, plan.plan);
    }
    sqlx::raw_sql(drop_index).execute(&mut conn).await.unwrap();
    // Fresh connections: SQLite's open ones keep planning with the schema they loaded.
    let db = Db::connect(url).await.unwrap();
    let plans = db.query_plans().await.unwrap();
    let overdue = plans.iter().find(|p| p.name == "orders past their payment deadline").unwrap();
    assert!(!overdue.indexed, "without its index the sweeper's query scans: {}", overdue.plan);
    let others: Vec<_> = plans.iter().filter(|p| p.name != overdue.name && !p.indexed).collect();
    assert!(others.is_empty(), "{others:?}");
}

#[tokio::test]
async fn hot_queries_use_their_indexes_on_sqlite() {
    let dir = TempDir::new("plans");
    let url = format!("sqlite://{}/orders.db", dir.0.display());
    plans_use_their_indexes(&url, None, "DROP INDEX orders_by_deadline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_queries_use_their_indexes_on_mariadb() {
    let mariadb = MariaDb::start().await.unwrap();
    // With statistics, as a production table has them after its first thousands of rows.
    let analyze = Some("ANALYZE TABLE orders");
    plans_use_their_indexes(&mariadb.url(), analyze, "ALTER TABLE orders DROP INDEX orders_by_deadline").await;
}

//! The replicated Redis topologies the failover tests of issue #15 run on
//! (`seckill_tests::redis_topology`), checked on their own: a write that
//! reached a replica survives `kill -9` of its master, a replica takes over
//! within seconds, and the old master, restarted, follows the new one.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::{AsyncCommands, Commands};
use seckill_tests::redis_topology::{RedisCluster, SentinelRedis};

/// How long a failover may take: detection (2 s), election, promotion.
const FAILOVER: Duration = Duration::from_secs(15);

fn connect(url: &str) -> redis::Connection {
    let conn = redis::Client::open(url).unwrap().get_connection_with_timeout(Duration::from_secs(2)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn
}

#[test]
fn sentinels_promote_a_replica_when_the_master_is_killed_and_the_old_master_comes_back_as_a_replica() {
    let start = Instant::now();
    let mut redis = SentinelRedis::start().unwrap();
    eprintln!("sentinel topology up in {:?}: {}", start.elapsed(), redis.url());
    assert_eq!(redis.sentinel_ports().len(), 3);
    assert_eq!(redis.data_ports().len(), 3);
    let old = redis.master_port().unwrap();
    assert_eq!(old, redis.data_ports()[0], "the first node started is the master");

    // A write the master acknowledged and a replica holds.
    let mut master = connect(&redis.node_url(old));
    let _: () = master.set("stock:1", 42).unwrap();
    let acked: u32 = redis::cmd("WAIT").arg(1).arg(1000).query(&mut master).unwrap();
    assert!(acked >= 1, "WAIT 1 1000: {acked} replicas acknowledged the write");

    redis.kill_node(old);
    let killed = Instant::now();
    let new = redis.wait_for_new_master(old, FAILOVER).unwrap();
    eprintln!("new master :{new} {:?} after kill -9 of :{old}", killed.elapsed());
    assert_ne!(new, old);
    assert_eq!(redis.master_port().unwrap(), new);
    let stock: i64 = connect(&redis.node_url(new)).get("stock:1").unwrap();
    assert_eq!(stock, 42, "the write survived the failover");

    // Restarted from its AOF, the old master is turned into a replica of the new one.
    redis.restart_node(old).unwrap();
    let restarted = Instant::now();
    redis.wait_for_replica(old, new, Duration::from_secs(40)).unwrap();
    eprintln!(":{old} a synced replica of :{new} {:?} after its restart", restarted.elapsed());
    let stock: i64 = connect(&redis.node_url(old)).get("stock:1").unwrap();
    assert_eq!(stock, 42);
}

/// Through the async cluster client the backend uses (`redis::cluster_async`).
/// The body blocks on the topology's polls: with the multi-thread flavour it
/// runs on a thread of its own, and the client's connection task on the workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_replica_takes_over_the_slots_of_its_killed_master_and_the_keys_stay_readable() {
    let start = Instant::now();
    let mut cluster = RedisCluster::start().unwrap();
    eprintln!("cluster up in {:?}: {}", start.elapsed(), cluster.url());
    let masters = cluster.masters().unwrap();
    assert_eq!(masters.len(), 3, "three masters: {masters:?}");

    let client = redis::cluster::ClusterClient::builder(cluster.url().split(','))
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    // Hash tags put each activity's keys in one slot; different activities
    // land on different masters.
    let keys: Vec<String> = (1..=9).map(|a| format!("activity:{{{a}}}:stock")).collect();
    for (i, key) in keys.iter().enumerate() {
        let _: () = conn.set(key, i).await.unwrap();
    }
    // WAIT goes to every master over the connections that wrote: all nine writes are on a replica.
    let acked: u32 = redis::cmd("WAIT").arg(1).arg(1000).query_async(&mut conn).await.unwrap();
    assert!(acked >= 1, "WAIT 1 1000: {acked} replicas acknowledged the writes");
    let owners: HashSet<u16> = keys.iter().map(|k| cluster.master_of_key(k).unwrap()).collect();
    assert!(owners.len() > 1, "the keys all landed on {owners:?}");
    assert!(owners.is_subset(&masters.iter().copied().collect()));

    let old = cluster.master_of_key(&keys[0]).unwrap();
    cluster.kill_node(old);
    let killed = Instant::now();
    let new = cluster.wait_for_failover(old, FAILOVER).unwrap();
    eprintln!("new master :{new} {:?} after kill -9 of :{old}", killed.elapsed());
    assert_ne!(new, old);
    assert_eq!(cluster.master_of_key(&keys[0]).unwrap(), new);
    let masters = cluster.masters().unwrap();
    assert!(masters.len() == 3 && !masters.contains(&old), "masters after the failover: {masters:?}");

    // The client that wrote them, and a new one (whose first seed node may be the dead one), read every key.
    let mut fresh = client.get_async_connection().await.unwrap();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(conn.get::<_, usize>(key).await.unwrap(), i, "{key} through the client that wrote it");
        assert_eq!(fresh.get::<_, usize>(key).await.unwrap(), i, "{key} through a new client");
    }
}

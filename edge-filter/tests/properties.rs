//! Property: through the whole filter, with requests spread over two worker
//! VMs sharing one store, a client never gets more than
//! `1 + burst + ⌊rate × W⌋` requests admitted in any window of `W` seconds
//! (the bound proved in `bucket.rs`; `1 + burst` is what nginx lets through
//! at one instant).

mod common;

use common::*;
use proptest::prelude::*;
use seckill_api::{EdgeRules, RateRule};
use seckill_edge_filter::bucket::Limit;
use seckill_edge_filter::store::MemoryStore;
use serde_json::json;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn no_window_admits_more_than_the_bound(
        rate in prop_oneof![0.5f64..5.0, 5.0f64..200.0],
        burst in 0u32..30,
        arrivals in prop::collection::vec((0u64..300_000, any::<bool>()), 1..200),
    ) {
        let rules = EdgeRules {
            per_ip: RateRule { rate_per_sec: rate, burst },
            per_user: RateRule { rate_per_sec: 1000.0, burst: 1000 },
            routes: vec![],
            max_in_flight_per_ip: 1000,
            max_in_flight_total: 1000,
        };
        let store = MemoryStore::new();
        let mut vms = [engine(json!({ "defaults": rules })), engine(json!({ "defaults": rules }))];
        let h = req("GET", "/api/activities");
        let mut t = T0;
        let mut admitted_at = Vec::new();
        for (gap, second_vm) in arrivals {
            t += gap;
            if run(&mut vms[usize::from(second_vm)], &store, &h, ip("198.51.100.7"), t).is_ok() {
                admitted_at.push(t);
            }
        }
        let limit = Limit::new(rate, burst).unwrap();
        for i in 0..admitted_at.len() {
            for j in i..admitted_at.len() {
                let n = (j - i + 1) as f64;
                let w = (admitted_at[j] - admitted_at[i]) as f64 / 1e6;
                let bound = 1.0 + f64::from(burst) + (limit.rate_per_sec() * w).floor();
                prop_assert!(n <= bound, "{n} admitted in {w} s; bound {bound}");
                prop_assert!(n <= 1.0 + f64::from(burst) + rate * w);
            }
        }
    }
}

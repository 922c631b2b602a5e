//! Host-level tests of the ABI with a hand-built filter (tests/common).

mod common;

use common::{MINI_METRICS, Mini, mini_filter, write_wasm};
use seckill_edge_host::harness::RequestFate;
use seckill_edge_host::imports::provided_imports;
use seckill_edge_host::{Harness, HostConfig, ManualClock, Plugin, RequestSpec, SystemClock, VmError};
use std::time::Duration;

fn harness_with(mini: &Mini, vms: usize) -> Harness {
    let path = write_wasm("mini", &mini_filter(mini));
    let mut config =
        HostConfig { plugin_config: br#"{"any":"config"}"#.to_vec(), capture_logs: true, ..HostConfig::default() };
    config.clusters.insert("seckill_backend".into(), "127.0.0.1:8081".into());
    Harness::load_with(path, config, ManualClock::at_unix_secs(1_800_000_000), vms).unwrap()
}

fn harness() -> Harness {
    harness_with(&Mini::default(), 1)
}

fn counts(h: &Harness) -> Vec<i64> {
    MINI_METRICS[..4].iter().map(|m| h.metric(m).unwrap()).collect()
}

/// What `proxy-wasm` 0.2.5 (src/hostcalls.rs) imports.
const SDK_IMPORTS: &[&str] = &[
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_add_header_map_value",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_set_effective_context",
    "proxy_call_foreign_function",
    "proxy_done",
    "proxy_define_metric",
    "proxy_get_metric",
    "proxy_record_metric",
    "proxy_increment_metric",
];

#[test]
fn every_import_of_the_rust_sdk_is_provided() {
    let provided = provided_imports();
    for name in SDK_IMPORTS {
        assert!(provided.contains(&("env", name)), "{name} missing");
    }
    for wasi in ["fd_write", "clock_time_get", "random_get", "environ_sizes_get", "environ_get", "proc_exit"] {
        assert!(provided.contains(&("wasi_snapshot_preview1", wasi)), "{wasi} missing");
    }
}

#[test]
fn a_missing_import_fails_at_load_and_is_named() {
    let mini = Mini {
        extra_imports: vec![("env", "proxy_does_not_exist"), ("wasi_snapshot_preview1", "path_open")],
        ..Mini::default()
    };
    let err =
        Plugin::load(&mini_filter(&mini), HostConfig::default(), SystemClock::shared()).err().expect("load fails");
    let msg = format!("{err:#}");
    assert!(msg.contains("env::proxy_does_not_exist (function)"), "{msg}");
    assert!(msg.contains("wasi_snapshot_preview1::path_open (function)"), "{msg}");
}

#[test]
fn modules_that_are_not_proxy_wasm_filters_are_refused() {
    let no_marker = Mini { abi_marker: false, ..Mini::default() };
    let err = Plugin::load(&mini_filter(&no_marker), HostConfig::default(), SystemClock::shared()).err().unwrap();
    assert!(err.to_string().contains("proxy_abi_version_0_2_1"), "{err}");
    let no_alloc = Mini { allocator: "", ..Mini::default() };
    let err = Plugin::load(&mini_filter(&no_alloc), HostConfig::default(), SystemClock::shared()).err().unwrap();
    assert!(err.to_string().contains("allocator"), "{err}");
}

#[test]
fn a_rejected_configuration_fails_at_load() {
    let path = write_wasm("mini-empty-config", &mini_filter(&Mini::default()));
    let err = Harness::load(path, "", ManualClock::at_unix_secs(1)).err().unwrap();
    assert!(format!("{err:#}").contains("rejected its configuration"), "{err:#}");
}

#[test]
fn either_allocator_export_is_used() {
    for allocator in ["malloc", "proxy_on_memory_allocate"] {
        let mut h = harness_with(&Mini { allocator, ..Mini::default() }, 1);
        let o = h.request(RequestSpec::get("/a").peer("198.51.100.4:4242")).unwrap();
        assert!(o.is_continue(), "{allocator}: {o:?}");
        // The property value came back through the guest allocator.
        assert_eq!(h.shared_data("mini:last_peer").as_deref(), Some(&b"198.51.100.4:4242"[..]), "{allocator}");
    }
}

#[test]
fn streams_live_and_end_like_in_envoy() {
    let mut h = harness();
    let o = h.request(RequestSpec::get("/api/activities")).unwrap();
    let RequestFate::Continue { stream, headers } = &o else { panic!("{o:?}") };
    assert_eq!(headers.get_str("x-mini"), Some("seen"));
    assert_eq!(headers.get_str(":path"), Some("/api/activities"));
    assert_eq!(counts(&h), [1, 0, 0, 0], "created only");
    let r = h.respond(*stream, 200, &[("content-type", "application/json")], b"[]").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get_str("x-mini-response"), Some("1"));
    assert_eq!(r.body, b"[]");
    assert_eq!(counts(&h), [1, 1, 1, 1], "done, logged, deleted");
    // Ending again is harmless; a reset ends the same way.
    h.end_stream(*stream).unwrap();
    let o = h.request(RequestSpec::post("/api/x", "{}")).unwrap();
    h.reset_stream(o.stream()).unwrap();
    assert_eq!(counts(&h), [2, 2, 2, 2]);
}

#[test]
fn local_responses_run_the_response_phase_and_end_the_stream() {
    let mut h = harness();
    let o = h.request(RequestSpec::get("/").header("x-deny", "1")).unwrap();
    assert_eq!(o.status(), Some(403));
    assert_eq!(o.json()["code"], "forbidden");
    assert_eq!(o.header("content-type"), Some("application/json"));
    assert_eq!(o.header("x-mini-response"), Some("1"), "the filter saw its own reply");
    assert_eq!(counts(&h), [1, 1, 1, 1]);
}

#[test]
fn ticks_follow_the_clock_and_http_calls_round_trip() {
    let mut h = harness();
    h.advance(Duration::from_millis(999)).unwrap();
    assert!(h.pending_http_calls().is_empty());
    h.advance(Duration::from_millis(1)).unwrap();
    let calls = h.pending_http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!((call.cluster.as_str(), call.target.as_str()), ("seckill_backend", "127.0.0.1:8081"));
    assert_eq!((call.method(), call.path()), ("GET", "/internal/edge/state"));
    assert_eq!(call.header("x-seckill-edge-secret"), Some("mini-secret"));
    assert_eq!(call.timeout, Duration::from_secs(2));
    h.respond_http_call(call.token, 200, &[("etag", "\"v1\"")], br#"{"version":"v1"}"#).unwrap();
    assert_eq!(h.shared_data("mini:last_call_body").as_deref(), Some(&br#"{"version":"v1"}"#[..]));
    assert_eq!(h.shared_data("mini:last_call_status").as_deref(), Some(&b"200"[..]));
    assert_eq!(h.metric("mini_call_headers"), Some(2), ":status and etag");
    assert_eq!(h.metric("mini_call_responses"), Some(1));
    // Never twice, never an unknown token.
    assert!(h.respond_http_call(call.token, 200, &[], b"").is_err());
    assert_eq!(h.vm(0).deliver_http_call(call.token, None), Ok(false));
    assert_eq!(h.vm(0).deliver_http_call(987_654, None), Ok(false));
    assert_eq!(h.metric("mini_call_responses"), Some(1));
    // Three more periods, three more calls.
    h.advance(Duration::from_millis(3000)).unwrap();
    assert_eq!(h.metric("mini_ticks"), Some(4));
}

#[test]
fn failed_and_timed_out_calls_arrive_without_headers() {
    let mut h = harness();
    h.tick().unwrap();
    let token = h.pending_http_calls()[0].token;
    h.fail_http_call(token).unwrap();
    assert_eq!(h.shared_data("mini:last_call_failed").as_deref(), Some(&b"1"[..]));
    assert_eq!(h.metric("mini_call_headers"), Some(0));

    let mut h = harness_with(&Mini { tick_ms: 0, ..Mini::default() }, 1);
    h.tick().unwrap();
    h.advance(Duration::from_millis(1999)).unwrap();
    assert_eq!(h.pending_http_calls().len(), 1);
    h.advance(Duration::from_millis(1)).unwrap();
    assert!(h.pending_http_calls().is_empty(), "timed out after 2 s");
    assert_eq!(h.shared_data("mini:last_call_failed").as_deref(), Some(&b"1"[..]));
}

#[test]
fn a_trap_fails_the_vm_loudly() {
    let mut h = harness();
    let err = h.request(RequestSpec::get("/").header("x-crash", "1")).err().unwrap();
    let vm_err = err.downcast_ref::<VmError>().expect("a VmError");
    assert!(matches!(vm_err, VmError::Trap(m) if m.contains("proxy_on_request_headers")), "{vm_err}");
    let again = h.request(RequestSpec::get("/")).err().unwrap();
    assert!(matches!(again.downcast_ref::<VmError>(), Some(VmError::Failed(_))), "{again}");
    assert!(h.metrics().contains("seckill_edge_vm_failures_total 1"));
}

#[test]
fn all_vms_share_one_store_and_one_set_of_metrics() {
    let mut h = harness_with(&Mini::default(), 2);
    h.request(RequestSpec::get("/").peer("192.0.2.1:1").on_vm(0)).unwrap();
    assert_eq!(h.shared_data("mini:last_peer").as_deref(), Some(&b"192.0.2.1:1"[..]));
    h.request(RequestSpec::get("/").peer("192.0.2.2:2").on_vm(1)).unwrap();
    assert_eq!(h.shared_data("mini:last_peer").as_deref(), Some(&b"192.0.2.2:2"[..]));
    assert_eq!(h.metric("mini_created"), Some(2));
    // Each VM ticks on its own, as Envoy's workers do.
    h.advance(Duration::from_secs(1)).unwrap();
    let calls = h.pending_http_calls();
    assert_eq!(calls.iter().map(|c| c.vm).collect::<Vec<_>>(), [0, 1]);
    assert_ne!(calls[0].token, calls[1].token);
}

#[test]
fn a_callback_that_never_returns_is_interrupted() {
    let path = write_wasm("mini-loop", &mini_filter(&Mini::default()));
    let config = HostConfig {
        plugin_config: b"{}".to_vec(),
        callback_timeout: Duration::from_millis(100),
        ..HostConfig::default()
    };
    let mut h = Harness::load_with(path, config, ManualClock::at_unix_secs(1), 1).unwrap();
    let started = std::time::Instant::now();
    let err = h.request(RequestSpec::get("/").header("x-loop", "1")).expect_err("interrupted");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(matches!(err.downcast_ref::<VmError>(), Some(VmError::Trap(m)) if m.contains("interrupt")), "{err:#}");
}

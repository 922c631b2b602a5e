//! The edge proxy end to end: a toy backend, the hand-built filter, real sockets.

mod common;

use common::backend::{Backend, EDGE_SECRET};
use common::{Mini, http, mini_filter, write_wasm};
use seckill_edge_host::proxy::{EdgeProxy, ProxyConfig};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn start(backend: &str, mini: &Mini, tweak: impl FnOnce(&mut ProxyConfig)) -> EdgeProxy {
    let wasm = write_wasm("mini-proxy", &mini_filter(mini));
    let mut cfg = ProxyConfig::new(wasm, backend, br#"{"edge_secret":"mini-secret"}"#.to_vec());
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.workers = 2;
    tweak(&mut cfg);
    EdgeProxy::start(cfg).unwrap()
}

fn metric(proxy: &EdgeProxy, name: &str) -> i64 {
    proxy.plugin().env().metrics.value(name).unwrap_or(0)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every stream the filter saw was finished: created == done == logged == deleted.
fn all_streams_finished(proxy: &EdgeProxy, expected: i64) {
    wait_for("every stream to end", || {
        ["mini_created", "mini_done", "mini_logged", "mini_deleted"].iter().all(|m| metric(proxy, m) == expected)
    });
}

#[test]
fn requests_go_through_the_filter_to_the_backend_and_back() {
    let backend = Backend::start();
    let proxy = start(&backend.addr.to_string(), &Mini::default(), |_| {});
    let r = http(proxy.listen_addr(), "GET", "/api/activities?x=1", &[("x-forwarded-for", "198.51.100.7")], b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-backend"), Some("toy"));
    assert_eq!(r.header("x-mini-response"), Some("1"), "response phase ran");
    let echo = r.json();
    assert_eq!(echo["path"], "/api/activities?x=1");
    assert_eq!(echo["headers"]["x-mini"], "seen", "the filter's request header is forwarded");
    assert_eq!(echo["headers"]["host"], "edge.test");
    assert_eq!(echo["headers"]["x-forwarded-for"], "198.51.100.7, 127.0.0.1");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "http");
    assert!(echo["headers"].get("connection").is_none());

    let r = http(proxy.listen_addr(), "POST", "/api/activities/1/purchase", &[], br#"{"quantity":1}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"], r#"{"quantity":1}"#);
    assert_eq!(r.json()["method"], "POST");
    all_streams_finished(&proxy, 2);
    assert_eq!(metric(&proxy, "seckill_edge_requests_total{outcome=\"forwarded\"}"), 2);
    // source.address is the TCP peer.
    let peer = proxy.plugin().env().shared_data.get(b"mini:last_peer").unwrap().0.to_vec();
    assert!(String::from_utf8(peer).unwrap().starts_with("127.0.0.1:"));
    proxy.shutdown();
}

#[test]
fn local_responses_denied_paths_and_host_limits() {
    let backend = Backend::start();
    let proxy = start(&backend.addr.to_string(), &Mini::default(), |c| c.max_body_bytes = 1024);
    let addr = proxy.listen_addr();

    let r = http(addr, "GET", "/api/activities", &[("x-deny", "1")], b"");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "forbidden");
    assert_eq!(r.header("x-mini-response"), Some("1"));

    let r = http(addr, "GET", "/internal/edge/state", &[("x-seckill-edge-secret", EDGE_SECRET)], b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "not_found");

    let big = "a".repeat(20 * 1024);
    let r = http(addr, "GET", "/api/activities", &[("x-big", &big)], b"");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "bad_request");

    let r = http(addr, "POST", "/api/x", &[], &[b'x'; 4096]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "request body too large");

    assert!(backend.seen().is_empty(), "nothing reached the backend: {:?}", backend.seen());
    // The oversized-header request never became a stream; the other three did.
    all_streams_finished(&proxy, 3);
    proxy.shutdown();
}

#[test]
fn a_backend_that_is_down_gets_a_json_503() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let proxy = start(&unused.to_string(), &Mini { tick_ms: 0, ..Mini::default() }, |_| {});
    let r = http(proxy.listen_addr(), "GET", "/api/activities", &[], b"");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "unavailable");
    assert_eq!(r.header("x-mini-response"), Some("1"));
    all_streams_finished(&proxy, 1);
    proxy.shutdown();
}

#[test]
fn ticks_sync_state_from_the_backend() {
    let backend = Backend::start();
    backend.set_edge_state(r#"{"version":"7","blacklist_ips":["203.0.113.9"]}"#);
    let proxy = start(&backend.addr.to_string(), &Mini { tick_ms: 100, ..Mini::default() }, |_| {});
    let env = proxy.plugin().env().clone();
    wait_for("the state to arrive", || env.shared_data.get(b"mini:last_call_body").is_some());
    assert_eq!(
        &env.shared_data.get(b"mini:last_call_body").unwrap().0[..],
        br#"{"version":"7","blacklist_ips":["203.0.113.9"]}"#
    );
    assert_eq!(&env.shared_data.get(b"mini:last_call_status").unwrap().0[..], b"200");
    let seen = backend.seen();
    let call = seen.iter().find(|s| s.path == "/internal/edge/state").unwrap();
    assert_eq!(call.header("x-seckill-edge-secret"), Some(EDGE_SECRET));
    assert_eq!(call.header("host"), Some("backend"));
    wait_for("more ticks", || metric(&proxy, "mini_ticks") >= 4);
    assert!(metric(&proxy, "seckill_edge_http_calls_total{result=\"ok\"}") >= 2);
    proxy.shutdown();
}

#[test]
fn a_client_that_goes_away_mid_response_still_ends_its_stream() {
    let backend = Backend::start();
    let proxy = start(&backend.addr.to_string(), &Mini { tick_ms: 0, ..Mini::default() }, |_| {});
    let mut s = std::net::TcpStream::connect(proxy.listen_addr()).unwrap();
    s.write_all(b"GET /stream HTTP/1.1\r\nhost: edge.test\r\n\r\n").unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(s);
    all_streams_finished(&proxy, 1);
    let sent = backend.state.lock().unwrap().stream_chunks_sent;
    assert!(sent < 50, "the backend stream was cut short ({sent} chunks)");
    proxy.shutdown();
}

#[test]
fn concurrent_clients_each_get_a_whole_lifecycle() {
    let backend = Backend::start();
    let proxy = start(&backend.addr.to_string(), &Mini { tick_ms: 0, ..Mini::default() }, |_| {});
    let addr = proxy.listen_addr();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..25 {
                    let deny = if (t + i) % 5 == 0 { vec![("x-deny", "1")] } else { vec![] };
                    let r = http(addr, "GET", &format!("/api/activities/{i}"), &deny, b"");
                    assert_eq!(r.status, if deny.is_empty() { 200 } else { 403 });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    all_streams_finished(&proxy, 200);
    assert_eq!(metric(&proxy, "seckill_edge_requests_total{outcome=\"local_response\"}"), 40);
    proxy.shutdown();
}

#[test]
fn admin_listener_serves_metrics_and_health() {
    let backend = Backend::start();
    let proxy = start(&backend.addr.to_string(), &Mini { tick_ms: 0, ..Mini::default() }, |_| {});
    http(proxy.listen_addr(), "GET", "/", &[], b"");
    let admin = proxy.admin_addr().unwrap();
    let m = http(admin, "GET", "/metrics", &[], b"");
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.contains("# TYPE mini_created counter\nmini_created 1\n"), "{text}");
    assert!(text.contains("seckill_edge_requests_total{outcome=\"forwarded\"} 1"), "{text}");
    let h = http(admin, "GET", "/healthz", &[], b"");
    assert_eq!((h.status, h.body.as_slice()), (200, &b"ok\n"[..]));
    // The public listener forwards /metrics like any other path.
    let r = http(proxy.listen_addr(), "GET", "/metrics", &[], b"");
    assert_eq!(r.json()["path"], "/metrics");
    proxy.shutdown();
}

#[test]
fn a_crashed_vm_answers_503_and_is_rebuilt() {
    let backend = Backend::start();
    let proxy = start(&backend.addr.to_string(), &Mini { tick_ms: 0, ..Mini::default() }, |c| c.workers = 1);
    let addr = proxy.listen_addr();
    let r = http(addr, "GET", "/", &[("x-crash", "1")], b"");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "unavailable");
    let r = http(addr, "GET", "/", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["headers"]["x-mini"], "seen", "filtered by the new VM");
    assert_eq!(metric(&proxy, "seckill_edge_vm_rebuilds_total"), 1);
    assert_eq!(metric(&proxy, "seckill_edge_vm_failures_total"), 1);
    proxy.shutdown();

    let proxy = start(&backend.addr.to_string(), &Mini { tick_ms: 0, ..Mini::default() }, |c| c.fail_open = true);
    let r = http(proxy.listen_addr(), "GET", "/open", &[("x-crash", "1")], b"");
    assert_eq!(r.status, 200, "fail open forwards unfiltered");
    assert!(r.json()["headers"].get("x-mini").is_none());
    proxy.shutdown();
}

/// Streams open when their VM traps are ended in the VM that replaces it:
/// each gets its `on_done`/`on_log`/`on_delete` there, once.
#[test]
fn a_crashed_vm_ends_the_streams_it_left_open_in_its_replacement() {
    let backend = Backend::start();
    let proxy = start(&backend.addr.to_string(), &Mini { tick_ms: 0, ..Mini::default() }, |c| c.workers = 1);
    let addr = proxy.listen_addr();
    let open: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /stream HTTP/1.1\r\nhost: edge.test\r\nconnection: close\r\n\r\n").unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            s
        })
        .collect();
    assert_eq!(metric(&proxy, "mini_done"), 0);
    assert_eq!(http(addr, "GET", "/", &[("x-crash", "1")], b"").status, 503);
    // The three streams and the request that crashed, ended by the new VM.
    wait_for("the old VM's streams to end", || {
        ["mini_done", "mini_logged", "mini_deleted"].iter().all(|m| metric(&proxy, m) == 4)
    });
    // They still complete (unfiltered), and are not ended a second time.
    for mut s in open {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(String::from_utf8_lossy(&rest).contains("chunk 49"));
    }
    assert_eq!(metric(&proxy, "mini_done"), 4);
    proxy.shutdown();
}

#[test]
fn a_filter_with_a_missing_import_does_not_start() {
    let wasm = write_wasm(
        "mini-missing",
        &mini_filter(&Mini { extra_imports: vec![("env", "proxy_nope")], ..Mini::default() }),
    );
    let mut cfg = ProxyConfig::new(wasm, "127.0.0.1:1", b"{}".to_vec());
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin_listen = None;
    let err = EdgeProxy::start(cfg).err().expect("refused");
    assert!(format!("{err:#}").contains("env::proxy_nope"), "{err:#}");
}

/// Collects the access lines an edge writes, parsed.
fn access_lines() -> (seckill_edge_host::proxy::AccessLog, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    let log = seckill_edge_host::proxy::AccessLog::to(move |line| {
        let text = std::str::from_utf8(line).unwrap();
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "one line per write: {text:?}");
        sink.lock().unwrap().push(serde_json::from_str(text).unwrap());
    });
    (log, lines)
}

#[test]
fn every_request_goes_by_one_id_which_the_access_line_names() {
    let backend = Backend::start();
    let (log, lines) = access_lines();
    let proxy = start(&backend.addr.to_string(), &Mini::default(), |c| c.access_log = Some(log));
    let addr = proxy.listen_addr();
    let line = |n: usize| -> serde_json::Value {
        wait_for("the access line", || lines.lock().unwrap().len() > n);
        lines.lock().unwrap()[n].clone()
    };

    // A well-formed id of the client's is kept: the backend gets it, the client gets it back.
    let r = http(addr, "GET", "/api/activities?x=1", &[("x-request-id", "test-req-1")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("test-req-1"));
    assert_eq!(r.json()["headers"]["x-request-id"], "test-req-1");
    let l = line(0);
    for (field, value) in [
        ("level", "INFO"),
        ("target", "seckill::access"),
        ("request_id", "test-req-1"),
        ("method", "GET"),
        ("path", "/api/activities?x=1"),
        ("client", "127.0.0.1"),
        ("decision", "forwarded"),
    ] {
        assert_eq!(l[field], value, "{field} in {l}");
    }
    assert_eq!(l["status"], 200);
    assert!(l["latency_ms"].as_f64().unwrap() > 0.0, "{l}");

    // None, or a malformed one: a fresh id, the same at the backend, on the answer and in the line.
    for sent in [None, Some("../.."), Some(&*"x".repeat(200))] {
        let headers: Vec<(&str, &str)> = sent.map(|id| ("x-request-id", id)).into_iter().collect();
        let n = lines.lock().unwrap().len();
        let r = http(addr, "POST", "/api/activities/1/purchase", &headers, br#"{"quantity":1}"#);
        assert_eq!(r.status, 200);
        let id = r.header("x-request-id").unwrap().to_owned();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert_eq!(r.json()["headers"]["x-request-id"], id.as_str());
        assert_eq!(line(n)["request_id"], id.as_str());
    }

    // Answers the edge gives itself carry the id too, and say who decided.
    let big = "a".repeat(20 * 1024);
    let cases = [
        ("denied-1", vec![("x-deny", "1")], "/api/activities", 403, "forbidden"),
        ("side-door-1", vec![], "/internal/edge/state", 404, "edge_denied"),
        ("big-1", vec![("x-big", big.as_str())], "/api/activities", 400, "edge_bad_request"),
    ];
    for (id, mut headers, path, status, decision) in cases {
        headers.push(("x-request-id", id));
        let n = lines.lock().unwrap().len();
        let r = http(addr, "GET", path, &headers, b"");
        assert_eq!(r.status, status, "{path}");
        assert_eq!(r.header("x-request-id"), Some(id));
        let l = line(n);
        assert_eq!((l["request_id"].as_str(), l["status"].as_u64()), (Some(id), Some(status as u64)), "{l}");
        assert_eq!(l["decision"], decision, "{l}");
    }
    proxy.shutdown();
}

#[test]
fn without_an_access_log_the_id_still_goes_through() {
    let backend = Backend::start();
    let proxy = start(&backend.addr.to_string(), &Mini::default(), |_| {});
    let r = http(proxy.listen_addr(), "GET", "/api/activities", &[("x-request-id", "quiet-1")], b"");
    assert_eq!(r.header("x-request-id"), Some("quiet-1"));
    assert_eq!(r.json()["headers"]["x-request-id"], "quiet-1");
    proxy.shutdown();
}

//! Our host is a general proxy-wasm host: a filter that works in Envoy
//! behaves the same in `seckill-edge`, not only ours. The probe filter
//! (`tests/fixtures/probe-filter`, not ours) exercises every ABI call
//! `seckill-edge` implements; each test sends the same requests through a
//! real Envoy and through `seckill-edge` (two workers each) in front of one
//! toy backend, and compares what came back, and what the backend received,
//! byte for byte.

use std::time::Duration;

use seckill_tests::edge::{EdgeHost, RunningEdge};
use seckill_tests::probe_wasm;

/// edge-host's toy backend (`/bytes/<n>`, and every request it saw).
#[path = "../../edge-host/tests/common/backend.rs"]
#[allow(dead_code)]
mod toy;

/// Headers a host adds by itself, whatever the filter does: not compared.
const HOST_OWN: &[&str] =
    &["date", "server", "x-envoy-upstream-service-time", "connection", "keep-alive", "x-request-id"];

/// What a client got back, headers sorted (their values in arrival order)
/// without the hosts' own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Vec<&[u8]> {
        self.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_slice()).collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the backend received: the probe's headers only (the hosts add
/// their own: x-request-id, x-forwarded-proto, …).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    method: String,
    path: String,
    probe_headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A request the probe is asked to act on.
#[derive(Clone)]
struct Ask {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// A request for `probe`, to a toy path whose answer is the same whichever
/// host asks (`/bytes/<n>`; the toy's echo would show each host's own headers).
fn ask(probe: &str) -> Ask {
    Ask { method: "GET", path: "/bytes/16".into(), headers: vec![("x-probe", probe.into())], body: Vec::new() }
}

impl Ask {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn post(mut self, path: &str, body: Vec<u8>) -> Self {
        self.method = "POST";
        self.path = path.into();
        self.body = body;
        self
    }

    fn get(mut self, path: &str) -> Self {
        self.path = path.into();
        self
    }
}

/// The toy backend and both hosts running the probe with `config`.
struct Hosts {
    toy: toy::Backend,
    envoy: RunningEdge,
    seckill_edge: RunningEdge,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Hosts {
    fn start(config: &[u8]) -> Self {
        let toy = toy::Backend::start();
        let envoy = RunningEdge::start_module(EdgeHost::Envoy, &[toy.addr], probe_wasm(), config.to_vec());
        let seckill_edge = RunningEdge::start_module(EdgeHost::SeckillEdge, &[toy.addr], probe_wasm(), config.to_vec());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let http = rt.block_on(async { reqwest::Client::builder().build().unwrap() });
        Self { toy, envoy, seckill_edge, rt, http }
    }

    fn send(&self, edge: &RunningEdge, ask: &Ask) -> (Answer, Option<Received>) {
        let before = self.toy.seen().len();
        let answer = self.rt.block_on(async {
            let method = reqwest::Method::from_bytes(ask.method.as_bytes()).unwrap();
            let mut request = self.http.request(method, edge.url(&ask.path)).body(ask.body.clone());
            for (name, value) in &ask.headers {
                request = request.header(*name, value.as_str());
            }
            let response = request.timeout(Duration::from_secs(20)).send().await.unwrap();
            let status = response.status().as_u16();
            let mut headers: Vec<(String, Vec<u8>)> = response
                .headers()
                .iter()
                .filter(|(k, _)| !HOST_OWN.contains(&k.as_str()))
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            headers.sort_by(|a, b| a.0.cmp(&b.0));
            let body = response.bytes().await.unwrap().to_vec();
            Answer { status, headers, body }
        });
        let received =
            self.toy.seen().get(before..).and_then(|new| new.iter().find(|s| !s.path.starts_with("/readyz")).cloned());
        let received = received.map(|s| Received {
            method: s.method,
            path: s.path,
            probe_headers: s.headers.into_iter().filter(|(k, _)| k.starts_with("x-probe")).collect(),
            body: s.body,
        });
        (answer, received)
    }

    /// Sends `ask` through both hosts; they must agree on everything.
    fn both(&self, ask: &Ask) -> (Answer, Option<Received>) {
        let (envoy, envoy_saw) = self.send(&self.envoy, ask);
        let (ours, ours_saw) = self.send(&self.seckill_edge, ask);
        assert_eq!(ours, envoy, "seckill-edge answered otherwise than Envoy (left: seckill-edge, right: Envoy)");
        assert_eq!(ours_saw, envoy_saw, "the backend received otherwise through seckill-edge than through Envoy");
        (envoy, envoy_saw)
    }
}

#[test]
fn requests_the_filter_leaves_alone_pass_the_same_way() {
    let hosts = Hosts::start(b"{}");
    let (answer, saw) = hosts.both(&ask("").get("/bytes/100?q=1"));
    assert_eq!((answer.status, answer.body.len()), (200, 100));
    assert_eq!(saw.unwrap().path, "/bytes/100?q=1");
}

#[test]
fn headers_the_filter_adds_replaces_and_removes_arrive_in_both_hosts() {
    let hosts = Hosts::start(b"{}");
    let request = ask("headers")
        .header("x-probe-replace", "original")
        .header("x-probe-remove", "gone")
        .header("x-probe-read", "copied value");
    let (answer, saw) = hosts.both(&request);
    let saw = saw.expect("forwarded");
    let sent =
        |name: &str| saw.probe_headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!(sent("x-probe-added"), ["first", "second"]);
    assert_eq!(sent("x-probe-replace"), ["replaced"]);
    assert!(sent("x-probe-remove").is_empty());
    assert_eq!(sent("x-probe-read-copy"), ["copied value"]);
    assert_eq!(sent("x-probe-missing-is-none"), ["true"]);
    assert_eq!(answer.header("x-probe-resp"), [&b"one"[..], b"two"]);
    assert_eq!(answer.header("x-probe-upstream-status"), [b"200"]);
    assert_eq!(answer.header("x-backend"), [&b"toy, seen by the probe"[..]]);
    assert!(answer.header("x-probe-resp-removed").is_empty());
}

#[test]
fn a_local_reply_keeps_its_status_every_header_and_its_body() {
    let hosts = Hosts::start(b"{}");
    let (answer, saw) = hosts.both(&ask("local"));
    assert!(saw.is_none(), "a local reply is not forwarded");
    assert_eq!(answer.status, 451);
    assert_eq!(answer.header("x-probe-twice"), [b"a", b"b"]);
    assert_eq!(answer.header("x-probe-local"), [b"1"]);
    assert_eq!(answer.text(), "refused by the probe, \u{2716}");
}

#[test]
fn request_and_response_bodies_are_read_and_replaced_whatever_their_length() {
    let hosts = Hosts::start(b"{}");
    for size in [0usize, 1, 1000, 70_000, 300_000] {
        let body: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
        let (answer, saw) = hosts.both(&ask("req-body").post("/bytes/16", body));
        assert_eq!(answer.status, 200, "{size}");
        let saw = saw.expect("forwarded");
        if size > 0 {
            let text = String::from_utf8_lossy(&saw.body).into_owned();
            assert!(text.starts_with(&format!("[{size} bytes, fnv ")), "{size}: {text}");
        }
    }
    for size in [0usize, 1, 1000, 70_000, 500_000] {
        let (answer, _) = hosts.both(&ask("resp-body").get(&format!("/bytes/{size}")));
        assert_eq!(answer.status, 200, "{size}");
        if size > 0 {
            assert!(answer.text().starts_with(&format!("[{size} bytes, fnv ")), "{size}: {}", answer.text());
        }
    }
}

#[test]
fn the_plugin_configuration_arrives_as_any_bytes() {
    let config = b"\x00\xff not JSON, not UTF-8: \xe2\x9c\x96 \xc3\x28 {\n}\x00".to_vec();
    let hosts = Hosts::start(&config);
    let (answer, _) = hosts.both(&ask("config"));
    assert_eq!(answer.body, config);
}

#[test]
fn a_callout_reaches_the_cluster_and_its_answer_comes_back() {
    let hosts = Hosts::start(b"{}");
    let (answer, _) = hosts.both(&ask("callout"));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-probe-callout-status"), [b"200"]);
    assert!(answer.text().starts_with("callout answered 200 from toy with [300 bytes"), "{}", answer.text());
    let callouts: Vec<_> = hosts.toy.seen().into_iter().filter(|s| s.path == "/bytes/300?from=callout").collect();
    assert_eq!(callouts.len(), 2, "one per host");
    for c in callouts {
        assert_eq!((c.method.as_str(), c.body.as_slice()), ("POST", &b"callout body"[..]));
        assert_eq!(c.header("x-probe-callout"), Some("1"));
    }
    // A cluster the host does not know is refused at once, the same way.
    let (answer, _) = hosts.both(&ask("callout-unknown"));
    assert_eq!(answer.status, 500);
}

#[test]
fn shared_data_metrics_properties_timers_and_the_clock_behave_alike() {
    let hosts = Hosts::start(b"{}");
    let (answer, _) = hosts.both(&ask("shared").header("x-probe-key", "k").header("x-probe-value", "v1"));
    assert_eq!(
        answer.text(),
        "absent: None cas none\nset: Ok(())\nget: Some(\"v1\") cas true\nstale cas: Err(CasMismatch)\n\
         fresh cas: Ok(())\nnow: Some(\"won\")"
    );
    // Each host counts its own: the first request sees 2, the next 4.
    let (answer, _) = hosts.both(&ask("metrics"));
    assert_eq!(
        answer.text(),
        "increment: Ok(())\ncounter: Ok(2)\nrecord: Ok(())\ngauge: Ok(42)\ndefined: true true true"
    );
    let (answer, _) = hosts.both(&ask("metrics"));
    assert!(answer.text().contains("counter: Ok(4)"), "{}", answer.text());
    for path in [
        "request.path",
        "request.url_path",
        "request.query",
        "request.method",
        "request.host",
        "request.scheme",
        "request.protocol",
        "request.useragent",
        "request.referer",
        "request.headers.x-probe-path",
        "plugin_root_id",
        "plugin_vm_id",
        "response.code",
        "no.such.property",
    ] {
        let request = ask("property")
            .get("/some/path?a=1&b=2")
            .header("x-probe-path", path)
            .header("host", "probe.example")
            .header("user-agent", "probe-agent/1")
            .header("referer", "http://referer.example/");
        hosts.both(&request);
    }
    let (answer, _) = hosts.both(&ask("set-property").header("x-probe-value", "stored"));
    assert_eq!(answer.text(), "set: Ok(())\nget: Ok(Some(\"stored\"))");
    let (answer, _) = hosts.both(&ask("time"));
    assert_eq!(answer.text(), "plausible");
    // The root contexts' timers fire in both (20 ms period, counted in shared data).
    let start = std::time::Instant::now();
    loop {
        let envoy = hosts.send(&hosts.envoy, &ask("ticks")).0.text();
        let ours = hosts.send(&hosts.seckill_edge, &ask("ticks")).0.text();
        if envoy == "ticking" && ours == "ticking" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "timers not ticking: Envoy {envoy}, seckill-edge {ours}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

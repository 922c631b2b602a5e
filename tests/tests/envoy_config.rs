//! What can be checked of the production Envoy config by reading it (the edge
//! suite, `edge_e2e.rs`, runs it in a real Envoy): its structure, the seed's
//! gateway semantics, that every placeholder is documented at its top, and
//! that the filter configuration it embeds is exactly `envoy/filter-config.json`,
//! the one the local edge and the tests load.

use serde_json::Value;
use serde_yaml::Value as Yaml;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn template() -> String {
    std::fs::read_to_string(root().join("envoy/envoy.yaml")).unwrap()
}

/// The placeholders of `envoy/envoy.yaml`, in order of first use.
fn placeholders(text: &str) -> Vec<String> {
    let names = std::cell::RefCell::new(Vec::new());
    seckill_api::placeholders::fill(text, |name| {
        names.borrow_mut().push(name.to_owned());
        Some(String::new())
    })
    .unwrap();
    names.into_inner()
}

/// `envoy/envoy.yaml` with its placeholders filled as a deployment would.
fn envoy() -> Yaml {
    let backends = ["b1:8081".to_owned(), "b2:8081".to_owned()];
    let site = seckill_api::placeholders::EnvoySite {
        listen_address: "0.0.0.0",
        listen_port: 8080,
        admin_port: 9901,
        backends: &backends,
        filter_wasm: "value-of-SECKILL_FILTER_WASM",
        edge_id: "value-of-SECKILL_EDGE_ID",
        edge_secret: "value-of-SECKILL_EDGE_SECRET",
        jwt_secret: "value-of-SECKILL_JWT_SECRET",
    };
    let filled = seckill_api::placeholders::render_envoy(&template(), &site).unwrap();
    serde_yaml::from_str(&filled).unwrap()
}

fn connection_manager(envoy: &Yaml) -> &Yaml {
    &envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

#[test]
fn the_wasm_filter_runs_before_the_router_with_the_shared_config() {
    let envoy = envoy();
    let hcm = connection_manager(&envoy);
    let filters = hcm["http_filters"].as_sequence().unwrap();
    let names: Vec<&str> = filters.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["envoy.filters.http.wasm", "envoy.filters.http.cache", "envoy.filters.http.router"]);
    let wasm = &filters[0]["typed_config"]["config"];
    assert_eq!(
        wasm["vm_config"]["code"]["local"]["filename"].as_str(),
        Some("value-of-SECKILL_FILTER_WASM"),
        "the .wasm path is the deployment's"
    );
    let embedded: Value = serde_json::from_str(wasm["configuration"]["value"].as_str().unwrap()).unwrap();
    let shared_text = std::fs::read_to_string(root().join("envoy/filter-config.json")).unwrap();
    let filled = seckill_api::placeholders::fill(&shared_text, |name| {
        Some(if name == "SECKILL_BACKEND" { "b1:8081".to_owned() } else { format!("value-of-{name}") })
    })
    .unwrap();
    let shared: Value = serde_json::from_str(&filled).unwrap();
    assert_eq!(embedded, shared, "envoy.yaml must embed envoy/filter-config.json unchanged");

    // The cluster the filter syncs state from exists.
    let cluster = shared["backend_cluster"].as_str().unwrap();
    let clusters = envoy["static_resources"]["clusters"].as_sequence().unwrap();
    assert!(clusters.iter().any(|c| c["name"].as_str() == Some(cluster)), "no cluster {cluster}");
}

#[test]
fn the_side_door_is_closed_and_client_headers_are_not_trusted() {
    let envoy = envoy();
    let hcm = connection_manager(&envoy);
    assert_eq!(hcm["use_remote_address"].as_bool(), Some(true));
    assert_eq!(hcm["xff_num_trusted_hops"].as_u64(), Some(0));
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"].as_sequence().unwrap();
    assert_eq!(routes[0]["match"]["prefix"].as_str(), Some("/internal/"));
    assert_eq!(routes[0]["direct_response"]["status"].as_u64(), Some(404));
    let shared: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("envoy/filter-config.json")).unwrap()).unwrap();
    assert_eq!(shared["blocked_path_prefixes"], serde_json::json!(["/internal/", "/metrics/"]));
    // Secrets are placeholders, never committed values.
    for key in ["edge_secret", "jwt_secret"] {
        assert!(shared[key].as_str().unwrap().starts_with("${SECKILL_"), "{key} must be a placeholder");
    }
}

#[test]
fn every_placeholder_is_documented_at_the_top() {
    let text = template();
    let header: String = text.lines().take_while(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n");
    let body: String = text.lines().skip_while(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n");
    let used = placeholders(&body);
    assert!(used.len() >= 9, "{used:?}");
    for name in used {
        assert!(header.contains(&format!("${{{name}}}")), "${{{name}}} is used but not documented at the top");
    }
}

#[test]
fn the_backends_are_balanced_checked_and_ejected_as_the_seed_says() {
    let envoy = envoy();
    let cluster = &envoy["static_resources"]["clusters"][0];
    assert_eq!(cluster["lb_policy"].as_str(), Some("LEAST_REQUEST"), "least_conn");
    assert_eq!(cluster["connect_timeout"].as_str(), Some("3s"), "proxy_connect_timeout 3s");
    let endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"].as_sequence().unwrap();
    assert_eq!(endpoints.len(), 2, "one endpoint per backend");
    let outlier = &cluster["outlier_detection"];
    assert_eq!(outlier["consecutive_5xx"].as_u64(), Some(3), "max_fails=3");
    assert_eq!(outlier["consecutive_gateway_failure"].as_u64(), Some(3));
    assert_eq!(outlier["base_ejection_time"].as_str(), Some("30s"), "fail_timeout=30s");
    let health = &cluster["health_checks"][0]["http_health_check"];
    assert_eq!(health["path"].as_str(), Some("/readyz"));
}

#[test]
fn only_reads_are_retried_and_a_failed_vm_is_reloaded() {
    let envoy = envoy();
    let hcm = connection_manager(&envoy);
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"].as_sequence().unwrap();
    for route in routes.iter().filter(|r| !r["route"].is_null()) {
        let retried = !route["route"]["retry_policy"].is_null();
        let get_only = route["match"]["headers"][0]["name"].as_str() == Some(":method")
            && route["match"]["headers"][0]["string_match"]["exact"].as_str() == Some("GET");
        assert_eq!(retried, get_only, "retries only for GETs: {route:?}");
        assert_eq!(route["route"]["timeout"].as_str(), Some("10s"), "proxy_read_timeout 10s");
    }
    let wasm = &hcm["http_filters"][0]["typed_config"]["config"];
    assert_eq!(wasm["failure_policy"].as_str(), Some("FAIL_RELOAD"));
}

#[test]
fn the_cache_runs_after_the_filter_and_on_the_activity_page_only() {
    let envoy = envoy();
    let hcm = connection_manager(&envoy);
    let cache = &hcm["http_filters"][1];
    assert_eq!(cache["name"].as_str(), Some("envoy.filters.http.cache"));
    assert_eq!(cache["disabled"].as_bool(), Some(true), "off unless a route turns it on");
    let config = &cache["typed_config"];
    assert_eq!(
        config["typed_config"]["@type"].as_str(),
        Some("type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig")
    );
    assert_eq!(config["ignore_request_cache_control_header"].as_bool(), Some(true), "a reload is served from it");
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"].as_sequence().unwrap();
    let cached: Vec<&Yaml> =
        routes.iter().filter(|r| !r["typed_per_filter_config"]["envoy.filters.http.cache"].is_null()).collect();
    assert_eq!(cached.len(), 1, "one route turns the cache on");
    let page = cached[0];
    assert_eq!(page["match"]["safe_regex"]["regex"].as_str(), Some("^/api/activities/[0-9]+$"));
    assert_eq!(page["match"]["headers"][0]["string_match"]["exact"].as_str(), Some("GET"));
    // Otherwise routed as every read.
    let read = routes.iter().find(|r| r["match"]["prefix"].as_str() == Some("/") && !r["match"]["headers"].is_null());
    assert_eq!(page["route"], read.unwrap()["route"]);
}

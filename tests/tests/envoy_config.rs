//! What can be checked of the production Envoy config without Envoy: its
//! structure, and that the filter configuration it embeds is exactly
//! `envoy/filter-config.json`, the one the local edge and the tests load.

use serde_json::Value;
use serde_yaml::Value as Yaml;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn envoy() -> Yaml {
    serde_yaml::from_str(&std::fs::read_to_string(root().join("envoy/envoy.yaml")).unwrap()).unwrap()
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
    assert_eq!(names, ["envoy.filters.http.wasm", "envoy.filters.http.router"]);
    let wasm = &filters[0]["typed_config"]["config"];
    assert_eq!(
        wasm["vm_config"]["code"]["local"]["filename"].as_str().unwrap().rsplit('/').next(),
        Some("seckill_edge_filter.wasm")
    );
    let embedded: Value = serde_json::from_str(wasm["configuration"]["value"].as_str().unwrap()).unwrap();
    let shared: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("envoy/filter-config.json")).unwrap()).unwrap();
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
    assert_eq!(shared["blocked_path_prefixes"], serde_json::json!(["/internal/"]));
    // Secrets are placeholders, never committed values.
    for key in ["edge_secret", "jwt_secret"] {
        assert!(shared[key].as_str().unwrap().starts_with("${SECKILL_"), "{key} must be a placeholder");
    }
}

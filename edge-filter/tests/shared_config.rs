//! The plugin configuration checked into `envoy/filter-config.json` (shared by
//! Envoy, the local edge and the tests) is one this filter accepts.

use seckill_edge_filter::config::Config;

#[test]
fn the_checked_in_filter_config_is_accepted() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/filter-config.json");
    let template = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rendered = seckill_api::placeholders::fill(&template, |name| {
        let value = match name {
            "SECKILL_BACKEND" => "127.0.0.1:8081",
            "SECKILL_EDGE_ID" => "test-edge",
            "SECKILL_EDGE_SECRET" => "edge-secret",
            "SECKILL_JWT_SECRET" => "jwt-secret",
            _ => return None,
        };
        Some(value.to_owned())
    })
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let config = Config::from_json(rendered.as_bytes()).unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(config.defaults, seckill_api::EdgeRules::default(), "the shared defaults are the seed's");
}

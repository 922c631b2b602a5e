-- The edge's limits, one row per version; the newest row is in force.
CREATE TABLE edge_rules (
    version       BIGINT PRIMARY KEY NOT NULL,
    rules_json    TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

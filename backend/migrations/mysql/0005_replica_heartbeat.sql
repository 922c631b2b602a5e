-- One row the API backends stamp on the primary every half second; read on a
-- read replica it says how far behind the replica is, with no replication
-- privileges needed (the pt-heartbeat way). See backend/src/db/replica.rs.
CREATE TABLE db_heartbeat (
    id     INT    PRIMARY KEY NOT NULL,
    at_ms  BIGINT NOT NULL
);
INSERT INTO db_heartbeat (id, at_ms) VALUES (1, 0);

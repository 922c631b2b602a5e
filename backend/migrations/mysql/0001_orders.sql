-- Orders, one row per accepted purchase, written by the order worker.
-- Times are milliseconds since the epoch (portable across SQLite and MySQL).
CREATE TABLE orders (
    order_id        VARCHAR(64) PRIMARY KEY NOT NULL,
    activity_id     BIGINT      NOT NULL,
    user_id         VARCHAR(64) NOT NULL,
    quantity        BIGINT      NOT NULL,
    amount_cents    BIGINT      NOT NULL,
    status          VARCHAR(16) NOT NULL,
    created_at_ms   BIGINT      NOT NULL,
    pay_deadline_ms BIGINT      NOT NULL,
    updated_at_ms   BIGINT      NOT NULL,
    -- The order's stream entry id as one sortable number: ms << 20 | seq.
    event_seq       BIGINT      NOT NULL,
    -- For cancelled/expired orders: 0 until the release script gave the stock back,
    -- 1 once it did, 2 if Redis refused (reconciliation shows it).
    stock_released  SMALLINT    NOT NULL DEFAULT 0
);
CREATE INDEX orders_by_user ON orders (user_id, created_at_ms, order_id);
CREATE INDEX orders_by_activity ON orders (activity_id, status, created_at_ms, order_id);
CREATE INDEX orders_by_deadline ON orders (status, pay_deadline_ms);
CREATE INDEX orders_by_release ON orders (stock_released, status);

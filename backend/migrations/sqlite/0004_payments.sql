-- Payment callbacks as applied, one row per provider payment id: the id is
-- the key, so a duplicated callback finds its row and changes nothing. A
-- payment that could not pay its order (late, amount off, already paid) is
-- kept as `refund_needed` with the reason, never dropped.
CREATE TABLE payments (
    payment_id     VARCHAR(64) PRIMARY KEY NOT NULL,
    order_id       VARCHAR(64) NOT NULL,
    amount_cents   BIGINT      NOT NULL,
    paid_at_ms     BIGINT      NOT NULL,
    applied_at_ms  BIGINT      NOT NULL,
    outcome        VARCHAR(16) NOT NULL,
    reason         TEXT        NOT NULL
);
CREATE INDEX payments_by_outcome ON payments (outcome, applied_at_ms);
CREATE INDEX payments_by_order ON payments (order_id);

-- Operators' ticks on the manual items of the production checklist.
CREATE TABLE checklist_ticks (
    item_id       VARCHAR(64) PRIMARY KEY NOT NULL,
    ticked        SMALLINT    NOT NULL,
    note          TEXT        NOT NULL,
    ticked_at_ms  BIGINT      NOT NULL
);

-- Transfers (issue 13): one row per transfer, with its two documents as the scripts keep them:
-- the record (`from` side) and the shadow (`to` side), each written from its own partition's
-- stream (so each has its own event position; an older event never overwrites a newer one).
CREATE TABLE transfers (
    id             text PRIMARY KEY,
    from_location  text NOT NULL,
    to_location    text NOT NULL,
    created_at     timestamptz NOT NULL,
    from_doc       jsonb,
    from_ms        bigint,
    from_seq       bigint,
    to_doc         jsonb,
    to_ms          bigint,
    to_seq         bigint,
    -- What clients see (domain/transfers.py status_of), kept by Postgres for lists and indexes.
    status text GENERATED ALWAYS AS (
        CASE
            WHEN from_doc->>'status' = 'cancelled' THEN 'cancelled'
            WHEN to_doc->>'status' IN ('partially_received', 'received') THEN to_doc->>'status'
            WHEN from_doc->>'status' = 'received' THEN 'received'
            WHEN from_doc IS NULL AND to_doc->>'status' = 'cancelled' THEN 'cancelled'
            ELSE 'in_transit'
        END
    ) STORED,
    last_ms bigint GENERATED ALWAYS AS (GREATEST(from_ms, to_ms)) STORED
);
CREATE INDEX transfers_open ON transfers (id) WHERE status IN ('in_transit', 'partially_received');
CREATE INDEX transfers_from ON transfers (from_location, created_at DESC, id DESC);
CREATE INDEX transfers_to ON transfers (to_location, created_at DESC, id DESC);
CREATE INDEX transfers_list ON transfers (created_at DESC, id DESC);
CREATE INDEX transfers_finished ON transfers (last_ms) WHERE status IN ('received', 'cancelled');

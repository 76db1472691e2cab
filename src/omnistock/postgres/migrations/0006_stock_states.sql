-- Stock states (issue 13): unsellable and incoming units per position, their deltas per ledger
-- row, and supply (incoming stock with an ETA) as the scripts keep it.
ALTER TABLE ledger
    ADD COLUMN delta_unsellable bigint NOT NULL DEFAULT 0,
    ADD COLUMN unsellable       bigint NOT NULL DEFAULT 0,
    ADD COLUMN delta_incoming   bigint NOT NULL DEFAULT 0,
    ADD COLUMN incoming         bigint NOT NULL DEFAULT 0;

ALTER TABLE positions
    ADD COLUMN unsellable bigint NOT NULL DEFAULT 0,
    ADD COLUMN incoming   bigint NOT NULL DEFAULT 0;

CREATE TABLE supply (
    id          text PRIMARY KEY,
    location    text NOT NULL,
    status      text NOT NULL,             -- open, partially_received, received, cancelled
    eta         timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    doc         jsonb NOT NULL,            -- the supply document as the scripts keep it
    event_ms    bigint NOT NULL,           -- stream id of the event that wrote this row,
    event_seq   bigint NOT NULL            -- so an older event never overwrites a newer one
);
CREATE INDEX supply_open ON supply (location) WHERE status IN ('open', 'partially_received');
CREATE INDEX supply_location ON supply (location, created_at DESC, id DESC);
CREATE INDEX supply_list ON supply (created_at DESC, id DESC);
CREATE INDEX supply_finished ON supply (event_ms) WHERE status IN ('received', 'cancelled');
CREATE INDEX supply_lines ON supply USING gin ((doc->'lines') jsonb_path_ops);

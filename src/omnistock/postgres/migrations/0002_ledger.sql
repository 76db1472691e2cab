-- The record behind the live state: every movement (ledger), the current positions, reservations,
-- recorded idempotent replies, and how far each partition's stream has been persisted.
-- A position's versions are unique and each comes from exactly one event, so (location, sku,
-- version) identifies an event: the one index serves both de-duplication and history reads.
CREATE TABLE ledger (
    event_id        text NOT NULL,             -- '<partition>:<stream id>'
    partition       integer NOT NULL,
    ts              timestamptz NOT NULL,
    location        text NOT NULL,
    sku             text NOT NULL,
    kind            text NOT NULL,
    reason          text NOT NULL,
    ref             text,
    actor           text NOT NULL,
    idempotency_key text,
    delta_on_hand   bigint NOT NULL,
    delta_reserved  bigint NOT NULL,
    on_hand         bigint NOT NULL,
    reserved        bigint NOT NULL,
    safety_stock    bigint NOT NULL,
    version         bigint NOT NULL,
    reservation_id  text,
    PRIMARY KEY (location, sku, version)
);

CREATE TABLE positions (
    location     text NOT NULL,
    sku          text NOT NULL,
    on_hand      bigint NOT NULL,
    reserved     bigint NOT NULL,
    safety_stock bigint,                       -- the position's own; NULL = the location's
    version      bigint NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (location, sku)
);

CREATE TABLE reservations (
    id          text PRIMARY KEY,
    location    text NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    doc         jsonb NOT NULL,                -- the reservation as the scripts keep it
    event_ms    bigint NOT NULL,               -- stream id of the event that wrote this row,
    event_seq   bigint NOT NULL                -- so an older event never overwrites a newer one
);
CREATE INDEX reservations_active ON reservations (location) WHERE status = 'active';

CREATE TABLE idempotency (
    key         text PRIMARY KEY,              -- the Redis key of the recorded reply
    record      bytea NOT NULL,                -- the record as Redis keeps it
    expires_at  timestamptz NOT NULL
);

CREATE TABLE stream_offsets (
    partition integer PRIMARY KEY,
    last_ms   bigint NOT NULL,
    last_seq  bigint NOT NULL
);

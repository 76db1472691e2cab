-- name: staging
-- Per-connection staging tables that COPY fills; emptied at every commit.
CREATE TEMP TABLE IF NOT EXISTS ledger_in (
    event_id text, partition integer, ts_ms bigint, location text, sku text, kind text,
    reason text, ref text, actor text, idem text, doh bigint, dr bigint, oh bigint, r bigint,
    ss bigint, v bigint, rid text, du bigint, u bigint, din bigint, inc bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS positions_in (
    location text, sku text, oh bigint, r bigint, oss bigint, v bigint, ts_ms bigint,
    u bigint, inc bigint
) ON COMMIT DELETE ROWS;

-- name: insert_ledger
-- One row per position event; replays of an event are ignored (a replay carries the same ts, so
-- it hits the same month partition and the key (location, sku, version, ts), migration 0008).
INSERT INTO ledger (event_id, partition, ts, location, sku, kind, reason, ref, actor,
                    idempotency_key, delta_on_hand, delta_reserved, on_hand, reserved,
                    safety_stock, version, reservation_id, delta_unsellable, unsellable,
                    delta_incoming, incoming)
SELECT event_id, partition, to_timestamp(ts_ms / 1000.0), location, sku, kind, reason,
       NULLIF(ref, ''), actor, NULLIF(idem, ''), doh, dr, oh, r, ss, v, NULLIF(rid, ''),
       du, u, din, inc
FROM ledger_in
ON CONFLICT (location, sku, version, ts) DO NOTHING;

-- name: upsert_positions
-- The newest state per position; an older version never overwrites a newer one.
INSERT INTO positions (location, sku, on_hand, reserved, safety_stock, version, updated_at,
                       unsellable, incoming)
SELECT location, sku, oh, r, oss, v, to_timestamp(ts_ms / 1000.0), u, inc FROM positions_in
ON CONFLICT (location, sku) DO UPDATE SET
    on_hand = EXCLUDED.on_hand, reserved = EXCLUDED.reserved,
    unsellable = EXCLUDED.unsellable, incoming = EXCLUDED.incoming,
    safety_stock = EXCLUDED.safety_stock, version = EXCLUDED.version,
    updated_at = EXCLUDED.updated_at
WHERE positions.version < EXCLUDED.version;

-- name: upsert_reservations
INSERT INTO reservations (id, location, status, created_at, expires_at, doc, event_ms, event_seq)
SELECT r.id, r.location, r.status, to_timestamp(r.created / 1000.0),
       to_timestamp(r.expires / 1000.0), r.doc::jsonb, r.ms, r.seq
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[],
            $7::bigint[], $8::bigint[]) AS r(id, location, status, created, expires, doc, ms, seq)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, expires_at = EXCLUDED.expires_at, doc = EXCLUDED.doc,
    event_ms = EXCLUDED.event_ms, event_seq = EXCLUDED.event_seq
WHERE (reservations.event_ms, reservations.event_seq) < (EXCLUDED.event_ms, EXCLUDED.event_seq);

-- name: upsert_sourcing_holds
-- Sourcing hold records (`o` events); an older event never overwrites a newer one.
INSERT INTO sourcing_holds (id, status, created_at, updated_at, doc, event_ms, event_seq)
SELECT h.id, h.status, to_timestamp(h.created / 1000.0), to_timestamp(h.updated / 1000.0),
       h.doc::jsonb, h.ms, h.seq
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[],
            $7::bigint[]) AS h(id, status, created, updated, doc, ms, seq)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, doc = EXCLUDED.doc,
    event_ms = EXCLUDED.event_ms, event_seq = EXCLUDED.event_seq
WHERE (sourcing_holds.event_ms, sourcing_holds.event_seq)
    < (EXCLUDED.event_ms, EXCLUDED.event_seq);

-- name: insert_idempotency
INSERT INTO idempotency (key, record, expires_at)
SELECT i.key, i.record, to_timestamp(i.expires / 1000.0)
FROM unnest($1::text[], $2::bytea[], $3::bigint[]) AS i(key, record, expires)
ON CONFLICT (key) DO NOTHING;

-- name: advance_offsets
INSERT INTO stream_offsets (partition, last_ms, last_seq)
SELECT o.partition, o.ms, o.seq FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS o(partition, ms, seq)
ON CONFLICT (partition) DO UPDATE SET last_ms = EXCLUDED.last_ms, last_seq = EXCLUDED.last_seq
WHERE (stream_offsets.last_ms, stream_offsets.last_seq) < (EXCLUDED.last_ms, EXCLUDED.last_seq);

-- name: quarantine
-- A stream entry the persister cannot write, kept with the error (see persister.py).
INSERT INTO quarantined_events (event_id, partition, fields, error)
VALUES ($1, $2, $3, $4)
ON CONFLICT (event_id) DO NOTHING;

-- name: offsets
SELECT partition, last_ms, last_seq FROM stream_offsets;

-- name: history
-- A position's ledger, newest first. Two blocks, not `$3 IS NULL OR version < $3`: a prepared
-- statement's generic plan cannot use such a condition in the index, and would read and sort
-- every row of the position for each page.
SELECT event_id, (extract(epoch FROM ts) * 1000)::bigint AS ts_ms, kind, reason, ref, actor,
       delta_on_hand, delta_reserved, on_hand, reserved, version, reservation_id,
       delta_unsellable, unsellable, delta_incoming, incoming
FROM ledger
WHERE location = $1 AND sku = $2
ORDER BY version DESC
LIMIT $3;

-- name: history_below
-- The same, below version $3 (a page after the first).
SELECT event_id, (extract(epoch FROM ts) * 1000)::bigint AS ts_ms, kind, reason, ref, actor,
       delta_on_hand, delta_reserved, on_hand, reserved, version, reservation_id,
       delta_unsellable, unsellable, delta_incoming, incoming
FROM ledger
WHERE location = $1 AND sku = $2 AND version < $3
ORDER BY version DESC
LIMIT $4;

-- name: event_version_near
-- An event's ts is its script's clock, which the ms of its stream id ($4) matches to within a
-- few ms unless the clock stepped back: look around it first (one month partition, the ts index)
-- instead of through every row the position has.
SELECT version FROM ledger
WHERE event_id = $1 AND location = $2 AND sku = $3
  AND ts BETWEEN to_timestamp(($4::bigint - 50) / 1000.0)
             AND to_timestamp(($4::bigint + 50) / 1000.0);

-- name: event_version
SELECT version FROM ledger WHERE event_id = $1 AND location = $2 AND sku = $3;

-- name: reservation_doc
SELECT doc::text FROM reservations WHERE id = $1;

-- name: has_state
SELECT EXISTS (SELECT 1 FROM positions) OR EXISTS (SELECT 1 FROM reservations)
    OR EXISTS (SELECT 1 FROM stream_offsets) OR EXISTS (SELECT 1 FROM sourcing_holds);

-- name: all_positions
SELECT location, sku, on_hand, reserved, safety_stock, version,
       (extract(epoch FROM updated_at) * 1000)::bigint AS ts, unsellable, incoming
FROM positions;

-- name: active_reservations
SELECT id, doc::text AS doc FROM reservations WHERE status = 'active';

-- name: live_idempotency
SELECT key, record, (extract(epoch FROM expires_at - now()) * 1000)::bigint AS ttl_ms
FROM idempotency WHERE expires_at > now() + interval '1 second';

-- name: positions_of
SELECT location, sku, on_hand, reserved, safety_stock, version,
       (extract(epoch FROM updated_at) * 1000)::bigint AS ts, unsellable, incoming
FROM positions WHERE (location, sku) IN (SELECT * FROM unnest($1::text[], $2::text[]));

-- name: positions_chunk
-- Positions in key order, after ($1, $2), for walking every position in chunks.
SELECT location, sku, on_hand, reserved, safety_stock, version,
       (extract(epoch FROM updated_at) * 1000)::bigint AS ts, unsellable, incoming
FROM positions WHERE (location, sku) > ($1, $2)
ORDER BY location, sku LIMIT $3;

-- name: sourcing_hold_doc
SELECT doc::text FROM sourcing_holds WHERE id = $1;

-- name: sourcing_hold_docs
SELECT id, doc::text AS doc FROM sourcing_holds WHERE id = ANY($1::text[]);

-- name: unfinished_sourcing_holds
-- Records a crash or a lost Redis may have left half done: the courier finishes or undoes them.
SELECT id, doc::text AS doc FROM sourcing_holds WHERE status IN ('pending', 'compensating');

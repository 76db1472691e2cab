-- The Postgres row-lock baseline (loadtests/baselines/pg_rowlock): omnistock's reserve semantics
-- kept in tables of their own schema, `rowlock`, so it can share a database with omnistock.
-- Times are ms since the epoch, as omnistock keeps them.

-- name: schema
CREATE SCHEMA IF NOT EXISTS rowlock;
CREATE TABLE IF NOT EXISTS rowlock.locations (
    id text PRIMARY KEY,
    safety_stock bigint NOT NULL DEFAULT 0,
    limited_threshold bigint NOT NULL DEFAULT 2
);
CREATE TABLE IF NOT EXISTS rowlock.positions (
    location text NOT NULL REFERENCES rowlock.locations,
    sku text NOT NULL,
    on_hand bigint NOT NULL DEFAULT 0,
    reserved bigint NOT NULL DEFAULT 0,
    safety_stock bigint,  -- the position's own; NULL: the location's
    version bigint NOT NULL DEFAULT 0,
    updated_at bigint NOT NULL,
    PRIMARY KEY (location, sku)
);
CREATE TABLE IF NOT EXISTS rowlock.reservations (
    id text PRIMARY KEY,
    location text NOT NULL REFERENCES rowlock.locations,
    status text NOT NULL,
    actor text NOT NULL,
    channel text,
    ref text,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    finished_at bigint
);
CREATE INDEX IF NOT EXISTS reservations_due ON rowlock.reservations (expires_at)
    WHERE status = 'active';
CREATE INDEX IF NOT EXISTS reservations_location ON rowlock.reservations (location);
CREATE TABLE IF NOT EXISTS rowlock.reservation_lines (
    reservation_id text NOT NULL REFERENCES rowlock.reservations ON DELETE CASCADE,
    line int NOT NULL,
    sku text NOT NULL,
    qty bigint NOT NULL,
    reserved bigint NOT NULL,
    PRIMARY KEY (reservation_id, line)
);

-- name: lock_positions
-- The lines' positions, locked in sku order (every writer locks in that order: no deadlocks).
SELECT p.sku, p.on_hand, p.reserved, coalesce(p.safety_stock, l.safety_stock) AS safety_stock
FROM rowlock.positions p
JOIN rowlock.locations l ON l.id = p.location
WHERE p.location = $1 AND p.sku = ANY($2::text[])
ORDER BY p.sku
FOR UPDATE OF p

-- name: location_exists
SELECT EXISTS (SELECT 1 FROM rowlock.locations WHERE id = $1)

-- name: hold
-- $1 id, $2 location, $3 skus, $4 qtys, $5 holds (per line, in request order), $6 actor,
-- $7 channel, $8 ref, $9 created_at, $10 expires_at. One statement (one round trip while the
-- locks are held): each data-modifying WITH part runs once, to completion, and the lines' foreign
-- key is checked at the statement's end, when the reservation row exists.
WITH lines AS (
    SELECT l.sku, l.qty, l.hold, l.line
    FROM unnest($3::text[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS l(sku, qty, hold, line)
), held AS (
    UPDATE rowlock.positions p
    SET reserved = p.reserved + lines.hold, version = p.version + 1, updated_at = $9
    FROM lines
    WHERE p.location = $2 AND p.sku = lines.sku AND lines.hold > 0
), doc AS (
    INSERT INTO rowlock.reservations (id, location, status, actor, channel, ref, created_at, expires_at)
    VALUES ($1, $2, 'active', $6, $7, $8, $9, $10)
)
INSERT INTO rowlock.reservation_lines (reservation_id, line, sku, qty, reserved)
SELECT $1, lines.line, lines.sku, lines.qty, lines.hold FROM lines

-- name: due_reservations
SELECT id FROM rowlock.reservations
WHERE status = 'active' AND expires_at <= $1
ORDER BY expires_at
LIMIT $2

-- name: lock_active_reservation
SELECT location FROM rowlock.reservations WHERE id = $1 AND status = 'active' FOR UPDATE

-- name: lock_reservation_positions
SELECT p.sku
FROM rowlock.positions p
JOIN rowlock.reservation_lines rl ON rl.sku = p.sku AND rl.reservation_id = $1
WHERE p.location = $2 AND rl.reserved > 0
ORDER BY p.sku
FOR UPDATE OF p

-- name: expire
-- $1 id, $2 location, $3 now: give back what the reservation holds and mark it expired.
WITH freed AS (
    SELECT sku, sum(reserved) AS qty FROM rowlock.reservation_lines
    WHERE reservation_id = $1 AND reserved > 0
    GROUP BY sku
), released AS (
    UPDATE rowlock.positions p
    SET reserved = p.reserved - freed.qty, version = p.version + 1, updated_at = $3
    FROM freed
    WHERE p.location = $2 AND p.sku = freed.sku
)
UPDATE rowlock.reservations SET status = 'expired', finished_at = $3 WHERE id = $1

-- name: upsert_location
INSERT INTO rowlock.locations (id, safety_stock, limited_threshold) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE
SET safety_stock = excluded.safety_stock, limited_threshold = excluded.limited_threshold

-- name: clear_location
-- Seeding starts a round afresh: no reservations and nothing held at the location.
WITH gone AS (DELETE FROM rowlock.reservations WHERE location = $1)
UPDATE rowlock.positions SET reserved = 0, version = version + 1, updated_at = $2
WHERE location = $1

-- name: seed_position
INSERT INTO rowlock.positions (location, sku, on_hand, reserved, safety_stock, version, updated_at)
VALUES ($1, $2, $3, 0, $4, 1, $5)
ON CONFLICT (location, sku) DO UPDATE
SET on_hand = excluded.on_hand, reserved = 0, safety_stock = excluded.safety_stock,
    version = rowlock.positions.version + 1, updated_at = excluded.updated_at

-- name: position
SELECT p.on_hand, p.reserved, coalesce(p.safety_stock, l.safety_stock) AS safety_stock,
       l.limited_threshold, p.version, p.updated_at
FROM rowlock.positions p
JOIN rowlock.locations l ON l.id = p.location
WHERE p.location = $1 AND p.sku = $2

-- name: held_by_active
-- What active reservations hold of one position, and how many reservations hold it.
SELECT coalesce(sum(rl.reserved), 0)::bigint AS held, count(DISTINCT r.id) AS reservations
FROM rowlock.reservations r
JOIN rowlock.reservation_lines rl ON rl.reservation_id = r.id
WHERE r.location = $1 AND r.status = 'active' AND rl.sku = $2 AND rl.reserved > 0

-- Pruning (postgres/prune.py): each block deletes at most $2 (or $1) rows, oldest first, and
-- returns at once; the caller repeats until a batch comes back short. Short transactions hold
-- only row locks, never a lock that blocks the persister. SKIP LOCKED: instances pruning at once
-- take different rows instead of waiting on each other. Ledger rows: partitions.sql (by month).

-- name: prune_reservations
-- Finished reservations whose last event (their end) is older than $1 seconds; never an active
-- one (the condition is checked again on the row deleted).
DELETE FROM reservations
WHERE id = ANY (ARRAY(
    SELECT id FROM reservations
    WHERE status <> 'active'
      AND event_ms < (extract(epoch FROM now()) * 1000)::bigint - $1::bigint * 1000
    ORDER BY event_ms LIMIT $2 FOR UPDATE SKIP LOCKED
))
AND status <> 'active';

-- name: prune_idempotency
-- Recorded replies past their expiry (Redis forgot them at the same moment).
DELETE FROM idempotency
WHERE key = ANY (ARRAY(
    SELECT key FROM idempotency WHERE expires_at < now()
    ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
))
AND expires_at < now();

-- name: prune_sourcing_holds
-- Finished sourcing hold records whose last change is older than $1 seconds: failed and released
-- ones, and held ones once their parts cannot be active any more (a reservation ends at most $3
-- seconds after it was created, and the parts were created before the record was held). Never a
-- pending or compensating one (the condition is checked again on the row deleted).
DELETE FROM sourcing_holds
WHERE id = ANY (ARRAY(
    SELECT id FROM sourcing_holds
    WHERE status IN ('held', 'failed', 'released')
      AND updated_at < now() - $1::double precision * interval '1 second'
          - CASE WHEN status = 'held' THEN $3::double precision * interval '1 second'
                 ELSE interval '0' END
    ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED
))
AND status IN ('held', 'failed', 'released');
-- name: prune_supply
-- Finished supply (received, cancelled) whose last event is older than $1 seconds; never an
-- open one (the condition is checked again on the row deleted).
DELETE FROM supply
WHERE id = ANY (ARRAY(
    SELECT id FROM supply
    WHERE status IN ('received', 'cancelled')
      AND event_ms < (extract(epoch FROM now()) * 1000)::bigint - $1::bigint * 1000
    ORDER BY event_ms LIMIT $2 FOR UPDATE SKIP LOCKED
))
AND status IN ('received', 'cancelled');

-- name: prune_transfers
-- Finished transfers (received, cancelled) whose last event (either side) is older than $1
-- seconds; never an open one (the condition is checked again on the row deleted).
DELETE FROM transfers
WHERE id = ANY (ARRAY(
    SELECT id FROM transfers
    WHERE status IN ('received', 'cancelled')
      AND last_ms < (extract(epoch FROM now()) * 1000)::bigint - $1::bigint * 1000
    ORDER BY last_ms LIMIT $2 FOR UPDATE SKIP LOCKED
))
AND status IN ('received', 'cancelled');

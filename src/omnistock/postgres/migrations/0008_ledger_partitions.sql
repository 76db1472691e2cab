-- Postgres growth bounded (issue 14): the ledger range-partitioned by month on ts, so retention
-- drops whole months (DETACH + DROP) instead of deleting rows one by one.
--
-- Partitions are UTC calendar months named ledger_pYYYYMM. ledger_default catches any row no month
-- partition covers (a clock far ahead, a month the pruner has not created yet): an insert never
-- fails for want of a partition, and the pruner moves such rows into their month's partition when
-- it creates it (ledger_ensure_month). A unique key of a partitioned table must include the
-- partition key, so the replay-dedup key is (location, sku, version, ts): a replayed event has
-- the same ts (the script's clock, carried in the event), so it still conflicts and is ignored.
-- Existing rows are copied into their months' partitions; every row is kept.

ALTER TABLE ledger RENAME TO ledger_unpartitioned;
ALTER INDEX ledger_pkey RENAME TO ledger_unpartitioned_pkey;
ALTER INDEX ledger_ts RENAME TO ledger_unpartitioned_ts;

CREATE TABLE ledger (
    event_id         text NOT NULL,            -- '<partition>:<stream id>'
    partition        integer NOT NULL,
    ts               timestamptz NOT NULL,
    location         text NOT NULL,
    sku              text NOT NULL,
    kind             text NOT NULL,
    reason           text NOT NULL,
    ref              text,
    actor            text NOT NULL,
    idempotency_key  text,
    delta_on_hand    bigint NOT NULL,
    delta_reserved   bigint NOT NULL,
    on_hand          bigint NOT NULL,
    reserved         bigint NOT NULL,
    safety_stock     bigint NOT NULL,
    version          bigint NOT NULL,
    reservation_id   text,
    delta_unsellable bigint NOT NULL DEFAULT 0,
    unsellable       bigint NOT NULL DEFAULT 0,
    delta_incoming   bigint NOT NULL DEFAULT 0,
    incoming         bigint NOT NULL DEFAULT 0,
    -- History pages walk it newest first per position (one descent per month partition).
    PRIMARY KEY (location, sku, version, ts)
) PARTITION BY RANGE (ts);
-- Row pruning of the months not yet wholly past retention, oldest first.
CREATE INDEX ledger_ts ON ledger (ts);
CREATE TABLE ledger_default PARTITION OF ledger DEFAULT;

-- How far back the ledger is complete: rows older than pruned_before may have been deleted by
-- retention (NULL row: none ever was). Only moves forward. History answers it as retained_since.
CREATE TABLE ledger_retention (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    pruned_before timestamptz NOT NULL
);

-- The first instant of the UTC month holding `at`.
CREATE FUNCTION ledger_month_start(at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- Creates the partition of the month holding `at` unless it exists; true when created. Rows of
-- that month in ledger_default move into it, in this transaction, so none is lost or doubled.
-- Locks: SHARE ROW EXCLUSIVE on ledger, then ACCESS EXCLUSIVE on ledger_default. Reads go on;
-- inserts wait the few milliseconds it takes: an insert already routed to ledger_default while
-- the month is attached would fail the default's new constraint (it is not routed again), so
-- none may be in flight (ATTACH alone would only take SHARE UPDATE EXCLUSIVE). Always the
-- parent first, as ledger_drop_month does, so two pruners never deadlock.
CREATE FUNCTION ledger_ensure_month(at timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := ledger_month_start(at);
    hi   timestamptz := ((lo AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'ledger_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    LOCK TABLE ONLY ledger IN SHARE ROW EXCLUSIVE MODE;
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    LOCK TABLE ledger_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE ledger INCLUDING DEFAULTS)', name);
    EXECUTE format('INSERT INTO %I SELECT * FROM ledger_default WHERE ts >= %L AND ts < %L',
                   name, lo, hi);
    DELETE FROM ledger_default WHERE ts >= lo AND ts < hi;
    -- The constraint lets ATTACH skip scanning the new table; the default is checked (empty or
    -- nearly: its rows of the month just left).
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (ts >= %L AND ts < %L)',
                   name, name || '_range', lo, hi);
    EXECUTE format('ALTER TABLE ledger ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, lo, hi);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', name, name || '_range');
    RETURN true;
END
$$;

-- Drops the partition of the month holding `at` (true when there was one) and records that the
-- ledger is complete only from the month's end. ACCESS EXCLUSIVE on ledger for the moment it takes
-- (the caller sets a lock_timeout and tries again next round rather than queue readers behind it).
CREATE FUNCTION ledger_drop_month(at timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := ledger_month_start(at);
    hi   timestamptz := ((lo AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'ledger_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    LOCK TABLE ONLY ledger IN ACCESS EXCLUSIVE MODE;
    IF NOT EXISTS (SELECT 1 FROM pg_inherits
                   WHERE inhparent = 'ledger'::regclass AND inhrelid = to_regclass(name)) THEN
        RETURN false;
    END IF;
    INSERT INTO ledger_retention (pruned_before) VALUES (hi)
    ON CONFLICT (id) DO UPDATE
        SET pruned_before = GREATEST(ledger_retention.pruned_before, EXCLUDED.pruned_before);
    EXECUTE format('ALTER TABLE ledger DETACH PARTITION %I', name);
    EXECUTE format('DROP TABLE %I', name);
    RETURN true;
END
$$;

-- Deletes at most `n` ledger rows older than `cutoff`, oldest first, one partition at a time
-- (a ctid names a row only within its partition; through the parent the planner joins a whole
-- month back to the batch), and records the cutoff when it deleted any. ROW EXCLUSIVE on the
-- parent first: no partition it lists can be dropped under it. SKIP LOCKED: pruners running at
-- once take different rows.
CREATE FUNCTION ledger_prune_rows(cutoff timestamptz, n integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part    regclass;
    done    integer := 0;
    deleted integer;
BEGIN
    LOCK TABLE ONLY ledger IN ROW EXCLUSIVE MODE;
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits
                WHERE inhparent = 'ledger'::regclass ORDER BY inhrelid::regclass::text LOOP
        EXIT WHEN done >= n;
        EXECUTE format('DELETE FROM %s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %s'
                       ' WHERE ts < $1 ORDER BY ts LIMIT $2 FOR UPDATE SKIP LOCKED))'
                       ' AND ts < $1', part, part)
            USING cutoff, n - done;
        GET DIAGNOSTICS deleted = ROW_COUNT;
        done := done + deleted;
    END LOOP;
    IF done > 0 THEN
        INSERT INTO ledger_retention (pruned_before) VALUES (cutoff)
        ON CONFLICT (id) DO UPDATE
            SET pruned_before = GREATEST(ledger_retention.pruned_before, EXCLUDED.pruned_before);
    END IF;
    RETURN done;
END
$$;

-- A partition for every month the old table has rows in, and for this month and the next two.
SELECT ledger_ensure_month(m)
FROM (
    SELECT DISTINCT ledger_month_start(ts) AS m FROM ledger_unpartitioned
    UNION
    SELECT ((ledger_month_start(now()) AT TIME ZONE 'UTC') + n * interval '1 month')
           AT TIME ZONE 'UTC'
    FROM generate_series(0, 2) AS n
) AS months
ORDER BY m;

INSERT INTO ledger (event_id, partition, ts, location, sku, kind, reason, ref, actor,
                    idempotency_key, delta_on_hand, delta_reserved, on_hand, reserved,
                    safety_stock, version, reservation_id, delta_unsellable, unsellable,
                    delta_incoming, incoming)
SELECT event_id, partition, ts, location, sku, kind, reason, ref, actor,
       idempotency_key, delta_on_hand, delta_reserved, on_hand, reserved,
       safety_stock, version, reservation_id, delta_unsellable, unsellable,
       delta_incoming, incoming
FROM ledger_unpartitioned;

DROP TABLE ledger_unpartitioned;

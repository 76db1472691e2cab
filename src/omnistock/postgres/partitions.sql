-- Ledger partitions (postgres/partitions.py): one per UTC month, named ledger_pYYYYMM, and
-- ledger_default for rows no month covers. The DDL lives in the functions of migration
-- 0008_ledger_partitions (ledger_ensure_month, ledger_drop_month, ledger_prune_rows).

-- name: months
-- The first instant of every month that has a partition, oldest first.
SELECT make_timestamptz(substr(c.relname, 9, 4)::int, substr(c.relname, 13, 2)::int, 1, 0, 0, 0,
                        'UTC') AS lo
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'ledger'::regclass AND c.relname ~ '^ledger_p[0-9]{6}$'
ORDER BY lo;

-- name: default_months
-- Months that have rows in the default partition (normally none: it is for stragglers).
SELECT DISTINCT ledger_month_start(ts) AS lo FROM ledger_default ORDER BY lo;

-- name: lock_timeout
-- How long a partition change may wait for its lock before giving up until the next round
-- (a waiting ACCESS EXCLUSIVE request would queue every reader and writer behind it).
SELECT set_config('lock_timeout', $1::integer::text || 'ms', true);

-- name: ensure_month
SELECT ledger_ensure_month($1);

-- name: drop_month
SELECT ledger_drop_month($1);

-- name: prune_rows
-- At most $2 rows older than $1 seconds, oldest first (see ledger_prune_rows).
SELECT ledger_prune_rows(now() - $1::double precision * interval '1 second', $2);

-- name: retained_since
-- Rows older than this may have been deleted by retention; NULL: none ever was.
SELECT (extract(epoch FROM pruned_before) * 1000)::bigint FROM ledger_retention;

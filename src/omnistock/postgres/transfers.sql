-- name: upsert_from
-- The newest record (`from` side) per transfer; an older event never overwrites a newer one.
INSERT INTO transfers (id, from_location, to_location, created_at, from_doc, from_ms, from_seq)
SELECT t.id, t.src, t.dst, to_timestamp(t.created / 1000.0), t.doc::jsonb, t.ms, t.seq
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[],
            $7::bigint[]) AS t(id, src, dst, created, doc, ms, seq)
ON CONFLICT (id) DO UPDATE SET
    from_doc = EXCLUDED.from_doc, from_ms = EXCLUDED.from_ms, from_seq = EXCLUDED.from_seq
WHERE transfers.from_ms IS NULL
   OR (transfers.from_ms, transfers.from_seq) < (EXCLUDED.from_ms, EXCLUDED.from_seq);

-- name: upsert_to
-- The newest shadow (`to` side) per transfer.
INSERT INTO transfers (id, from_location, to_location, created_at, to_doc, to_ms, to_seq)
SELECT t.id, t.src, t.dst, to_timestamp(t.created / 1000.0), t.doc::jsonb, t.ms, t.seq
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[],
            $7::bigint[]) AS t(id, src, dst, created, doc, ms, seq)
ON CONFLICT (id) DO UPDATE SET
    to_doc = EXCLUDED.to_doc, to_ms = EXCLUDED.to_ms, to_seq = EXCLUDED.to_seq
WHERE transfers.to_ms IS NULL
   OR (transfers.to_ms, transfers.to_seq) < (EXCLUDED.to_ms, EXCLUDED.to_seq);

-- name: transfer_docs
SELECT from_doc::text AS from_doc, to_doc::text AS to_doc FROM transfers WHERE id = $1;

-- name: open_transfers
SELECT id, from_doc::text AS from_doc, to_doc::text AS to_doc FROM transfers
WHERE status IN ('in_transit', 'partially_received');

-- name: transfer_page
-- Newest first; $3 = the id of the last item of the previous page (NULL: from the newest).
-- Filters: $1 location (from or to), $2 status; NULL = any.
SELECT from_doc::text AS from_doc, to_doc::text AS to_doc FROM transfers
WHERE ($1::text IS NULL OR from_location = $1 OR to_location = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR (created_at, id) < (SELECT created_at, id FROM transfers WHERE id = $3))
ORDER BY created_at DESC, id DESC
LIMIT $4;

-- name: transfer_exists
SELECT EXISTS (SELECT 1 FROM transfers WHERE id = $1);

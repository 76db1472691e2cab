-- name: upsert_supply
-- The newest document per supply; an older event never overwrites a newer one.
INSERT INTO supply (id, location, status, eta, created_at, doc, event_ms, event_seq)
SELECT s.id, s.location, s.status, to_timestamp(s.eta / 1000.0), to_timestamp(s.created / 1000.0),
       s.doc::jsonb, s.ms, s.seq
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[],
            $7::bigint[], $8::bigint[]) AS s(id, location, status, eta, created, doc, ms, seq)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, eta = EXCLUDED.eta, doc = EXCLUDED.doc,
    event_ms = EXCLUDED.event_ms, event_seq = EXCLUDED.event_seq
WHERE (supply.event_ms, supply.event_seq) < (EXCLUDED.event_ms, EXCLUDED.event_seq);

-- name: supply_doc
SELECT doc::text FROM supply WHERE id = $1;

-- name: open_supply
SELECT id, doc::text AS doc FROM supply WHERE status IN ('open', 'partially_received');

-- name: supply_page
-- Newest first; $4 = the id of the last item of the previous page (NULL: from the newest).
-- Filters: $1 location, $2 sku (a line of it), $3 status; NULL = any.
SELECT doc::text AS doc FROM supply
WHERE ($1::text IS NULL OR location = $1)
  AND ($2::text IS NULL OR doc->'lines' @> jsonb_build_array(jsonb_build_object('sku', $2::text)))
  AND ($3::text IS NULL OR status = $3)
  AND ($4::text IS NULL OR (created_at, id) < (SELECT created_at, id FROM supply WHERE id = $4))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: supply_exists
SELECT EXISTS (SELECT 1 FROM supply WHERE id = $1);

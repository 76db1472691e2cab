-- name: all_locations
SELECT id, name, kind, lat, lon, pickup, ship_from, groups, safety_stock, limited_threshold,
       timezone, priority, channel_safety_stock::text AS channel_safety_stock, created_at, updated_at
FROM locations ORDER BY id;

-- name: upsert_location
-- Returns the row and whether it was created (xmax = 0 on insert).
INSERT INTO locations (id, name, kind, lat, lon, pickup, ship_from, groups, safety_stock,
                       limited_threshold, timezone, priority, channel_safety_stock)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb)
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, kind = EXCLUDED.kind, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
    pickup = EXCLUDED.pickup, ship_from = EXCLUDED.ship_from, groups = EXCLUDED.groups,
    safety_stock = EXCLUDED.safety_stock, limited_threshold = EXCLUDED.limited_threshold,
    timezone = EXCLUDED.timezone, priority = EXCLUDED.priority,
    channel_safety_stock = EXCLUDED.channel_safety_stock, updated_at = now()
RETURNING id, name, kind, lat, lon, pickup, ship_from, groups, safety_stock, limited_threshold,
          timezone, priority, channel_safety_stock::text AS channel_safety_stock, created_at,
          updated_at, (xmax = 0) AS created;

-- name: insert_key
INSERT INTO api_keys (id, name, role, locations, key_hash) VALUES ($1, $2, $3, $4, $5)
RETURNING id, name, role, locations, created_at;

-- name: live_key_hashes
SELECT id, name, role, locations, key_hash FROM api_keys WHERE revoked_at IS NULL;

-- name: active_keys
SELECT id, name, role, locations, created_at FROM api_keys WHERE revoked_at IS NULL
ORDER BY created_at, id;

-- name: revoke_key
UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id;

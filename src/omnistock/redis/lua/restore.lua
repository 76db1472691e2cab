-- restore.lua: write positions of one partition as Postgres has them (rebuild, reconcile --fix).
-- Not a movement: no version bump and no event; the values are the record's.
-- KEYS[1] stream (unused: a restore runs while the partition is not ready), KEYS[2] idempotency
--   record (unused), then per position i (from 0): KEYS[3+2i] position, KEYS[4+2i] sku index
-- ARGV per position i: ARGV[1+6i] sku, on_hand, reserved, own safety stock ('' none), version,
--   updated_at ms
-- Returns {C_OK, count}
local n = (#KEYS - 2) / 2
for i = 0, n - 1 do
  local a, key = 1 + 6 * i, KEYS[3 + 2 * i]
  redis.call('HSET', key, 'oh', ARGV[a + 1], 'r', ARGV[a + 2], 'v', ARGV[a + 4], 'ts', ARGV[a + 5])
  if ARGV[a + 3] == '' then redis.call('HDEL', key, 'ss') else redis.call('HSET', key, 'ss', ARGV[a + 3]) end
  redis.call('SADD', KEYS[4 + 2 * i], ARGV[a])
end
return { C_OK, n, 0, '', '' }

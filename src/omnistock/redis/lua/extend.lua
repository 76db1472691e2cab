-- extend.lua: move an active reservation's expiry to now + ttl, never past created_at + the
-- longest lifetime (checked here, against the Redis clock, so no caller can race it).
-- KEYS: the reservation layout of _lib.lua (stream, idempotency, reservation, expiry zset,
--   location meta, sku index, positions of its lines in order)
-- ARGV[1..4] actor, idempotency hash, idempotency ttl ms, idempotency key; ARGV[5] retention ms;
--   ARGV[6] ttl ms, ARGV[7] longest lifetime ms (expires_at <= created_at + this)
-- Returns {C_OK, reservation json} | {C_NO_RESERVATION, ''} | {C_NOT_ACTIVE, status}
--   | {C_TOO_LONG, json [latest expires_at ms, ms from now to it]} | {C_STALE, ''}
--   | {C_IDEMPOTENCY, ''}; a replay adds a third element 1.
--   A reservation found past its expiry is expired instead (and C_NOT_ACTIVE 'expired' returned).
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_reservation(KEYS)
if err then return err end
expire_if_due(ctx, KEYS, doc, tonumber(ARGV[5]))
if doc.status ~= 'active' then return reply(ctx, C_NOT_ACTIVE, doc.status) end
local latest = doc.created_at + tonumber(ARGV[7])
local wanted = ctx.now + tonumber(ARGV[6])
if wanted > latest then
  return reply(ctx, C_TOO_LONG, cjson.encode({ latest, latest - ctx.now }))
end
doc.expires_at = wanted
local json = cjson.encode(doc)
redis.call('HSET', KEYS[3], 'doc', json)
redis.call('ZADD', KEYS[4], doc.expires_at, doc.id)
emit_reservation(ctx, json, 'extend')
return reply(ctx, C_OK, json)

-- extend.lua: move an active reservation's expiry to now + ttl.
-- KEYS: the reservation layout of _lib.lua (stream, idempotency, reservation, expiry zset,
--   location meta, sku index, positions of its lines in order)
-- ARGV[1..4] actor, idempotency hash, idempotency ttl ms, idempotency key; ARGV[5] retention ms;
--   ARGV[6] ttl ms
-- Returns {C_OK, reservation json} | {C_NO_RESERVATION, ''} | {C_NOT_ACTIVE, status}
--   | {C_STALE, ''} | {C_IDEMPOTENCY, ''}; a replay adds a third element 1.
--   A reservation found past its expiry is expired instead (and C_NOT_ACTIVE 'expired' returned).
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_reservation(KEYS)
if err then return err end
expire_if_due(ctx, KEYS, doc, tonumber(ARGV[5]))
if doc.status ~= 'active' then return reply(ctx, C_NOT_ACTIVE, doc.status) end
doc.expires_at = ctx.now + tonumber(ARGV[6])
local json = cjson.encode(doc)
redis.call('HSET', KEYS[3], 'doc', json)
redis.call('ZADD', KEYS[4], doc.expires_at, doc.id)
emit_reservation(ctx, json, 'extend')
return reply(ctx, C_OK, json)

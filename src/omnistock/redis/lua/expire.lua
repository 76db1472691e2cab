-- expire.lua: end an active reservation whose expires_at has passed (status 'expired'), as the
-- sweeper asks; safe to call from several sweepers at once: only one call expires it.
-- KEYS: the reservation layout of _lib.lua (stream, idempotency, reservation, expiry zset,
--   location meta, sku index, positions of its lines in order)
-- ARGV[1..4] actor, idempotency hash ('' here), idempotency ttl ms, idempotency key;
--   ARGV[5] retention ms
-- Returns {C_OK, reservation json} | {C_NOT_DUE, ''} (extended meanwhile)
--   | {C_NOT_ACTIVE, status} (already ended; its expiry entry is dropped)
--   | {C_NO_RESERVATION, ''} | {C_STALE, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_reservation(KEYS)
if err then return err end
if doc.status ~= 'active' then
  redis.call('ZREM', KEYS[4], doc.id)
  return reply(ctx, C_NOT_ACTIVE, doc.status)
end
if doc.expires_at > ctx.now then return reply(ctx, C_NOT_DUE, '') end
return reply(ctx, C_OK, settle(ctx, KEYS, doc, 'expired', 'expire', {}, tonumber(ARGV[5])))

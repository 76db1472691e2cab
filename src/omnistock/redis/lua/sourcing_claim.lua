-- sourcing_claim.lua: the courier takes over an unfinished sourcing hold whose lease has passed
-- (its driver went quiet): the lease is renewed (so one courier drives it at a time) and the
-- record returned. Finished or vanished records leave the pending set.
-- KEYS[1] stream, KEYS[2] idempotency record (unused placeholder), KEYS[3] hold record hash,
--   KEYS[4] pending zset
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] hold id, ARGV[6] lease ms
-- Returns {C_OK, record json} | {C_NOT_DUE, ''} (lease not passed) | {C_HOLD_STATE, status}
--   (finished) | {C_NO_HOLD, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local json = redis.call('HGET', KEYS[3], 'doc')
if not json then
  redis.call('ZREM', KEYS[4], ARGV[5])
  return reply(ctx, C_NO_HOLD, '')
end
local doc = cjson.decode(json)
if doc.status ~= 'pending' and doc.status ~= 'compensating' then
  redis.call('ZREM', KEYS[4], ARGV[5])
  return reply(ctx, C_HOLD_STATE, doc.status)
end
if doc.lease_until > ctx.now then return reply(ctx, C_NOT_DUE, '') end
doc.lease_until = ctx.now + tonumber(ARGV[6])
return reply(ctx, C_OK, save_hold(ctx, KEYS[3], KEYS[4], doc, 'claim'))

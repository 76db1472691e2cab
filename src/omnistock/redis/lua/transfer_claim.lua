-- transfer_claim.lua: the courier takes over a pending transfer record whose lease has passed
-- (its driver went quiet): the lease is renewed (one courier drives it at a time) and the record
-- returned. Records no longer pending, or vanished, leave the pending set.
-- KEYS: the record layout of _lib.lua (first four keys)
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] transfer id, ARGV[6] lease ms
-- Returns {C_OK, record json} | {C_NOT_DUE, ''} (lease not passed) | {C_TRANSFER_STATE, status}
--   (not pending) | {C_NO_TRANSFER, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local json = redis.call('HGET', KEYS[KT_REC], 'doc')
if not json then
  redis.call('ZREM', KEYS[KT_PENDING], ARGV[5])
  return reply(ctx, C_NO_TRANSFER, '')
end
local doc = cjson.decode(json)
if not doc.pending then
  redis.call('ZREM', KEYS[KT_PENDING], ARGV[5])
  return reply(ctx, C_TRANSFER_STATE, doc.status)
end
if doc.lease_until > ctx.now then return reply(ctx, C_NOT_DUE, '') end
doc.lease_until = ctx.now + tonumber(ARGV[6])
return reply(ctx, C_OK, save_transfer(ctx, KEYS[KT_REC], KEYS[KT_PENDING], doc, 'claim', 0))

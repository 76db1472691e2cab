-- sourcing_undo.lua: undo one part of a sourcing hold. Its reservation active: released (kind
-- release, reason sourcing_undo, so the ledger shows it); absent: its id is voided, so a hold of
-- it arriving later does nothing; already ended (expired, committed, released): nothing.
-- KEYS[1] stream, KEYS[2] idempotency record (unused placeholder), KEYS[3] reservation hash,
--   KEYS[4] expiry zset, KEYS[5] location meta, KEYS[6] location sku index,
--   KEYS[7..#KEYS-1] positions of the part's lines, in order, KEYS[#KEYS] the part's void marker
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] retention ms, ARGV[6] void marker ttl ms
-- Returns {C_OK, 'released' | 'voided' | its status when it had ended} | {C_STALE, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local json = redis.call('HGET', KEYS[3], 'doc')
if not json then
  redis.call('SET', KEYS[#KEYS], '1', 'PX', tonumber(ARGV[6]))
  return reply(ctx, C_OK, 'voided')
end
local doc = cjson.decode(json)
if #KEYS - 7 ~= #doc.lines then return reply(ctx, C_STALE, '') end
local retention = tonumber(ARGV[5])
expire_if_due(ctx, KEYS, doc, retention)
if doc.status ~= 'active' then return reply(ctx, C_OK, doc.status) end
settle(ctx, KEYS, doc, 'released', 'release', {}, retention, 'sourcing_undo')
return reply(ctx, C_OK, 'released')

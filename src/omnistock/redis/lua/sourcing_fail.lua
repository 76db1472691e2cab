-- sourcing_fail.lua: the parts of the attempt are undone and no option is left (or the courier,
-- which never re-plans, gives up): compensating -> failed, with the shortages that say why.
-- KEYS[1] stream, KEYS[2] idempotency record (unused placeholder), KEYS[3] hold record hash,
--   KEYS[4] pending zset
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] attempt, ARGV[6] retention ms,
--   ARGV[7] shortages: JSON [[sku, requested, available], ...] (empty: none known)
-- Returns {C_OK, record json} | {C_HOLD_STATE, status} (not compensating, or another attempt)
--   | {C_NO_HOLD, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_hold(KEYS[3])
if err then return err end
if doc.status ~= 'compensating' or doc.attempt ~= tonumber(ARGV[5]) then
  return reply(ctx, C_HOLD_STATE, doc.status)
end
doc.status = 'failed'
local shortages = cjson.decode(ARGV[7])
if #shortages > 0 then doc.shortages = shortages end -- (cjson would write an empty list as {})
return reply(ctx, C_OK, save_hold(ctx, KEYS[3], KEYS[4], doc, 'fail', tonumber(ARGV[6])))

-- sourcing_replan.lua: the parts of a lost attempt are undone and a new plan was made:
-- compensating -> pending, attempt + 1, the new parts (fresh reservation ids), lease renewed.
-- KEYS[1] stream, KEYS[2] idempotency record (unused placeholder), KEYS[3] hold record hash,
--   KEYS[4] pending zset
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] attempt (the lost one), ARGV[6] lease ms,
--   ARGV[7] the new parts (JSON list of parts), ARGV[8] the new why
-- Returns {C_OK, record json} | {C_HOLD_STATE, status} (not compensating, or another attempt)
--   | {C_NO_HOLD, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_hold(KEYS[3])
if err then return err end
if doc.status ~= 'compensating' or doc.attempt ~= tonumber(ARGV[5]) then
  return reply(ctx, C_HOLD_STATE, doc.status)
end
doc.status, doc.attempt = 'pending', doc.attempt + 1
doc.lease_until = ctx.now + tonumber(ARGV[6])
doc.parts, doc.why = cjson.decode(ARGV[7]), ARGV[8]
return reply(ctx, C_OK, save_hold(ctx, KEYS[3], KEYS[4], doc, 'replan'))

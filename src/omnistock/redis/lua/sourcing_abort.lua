-- sourcing_abort.lua: a part of the attempt could not be held: pending -> compensating (its lease
-- renewed, so whoever aborted has the time to undo the parts before the courier may step in).
-- KEYS[1] stream, KEYS[2] idempotency record (unused placeholder), KEYS[3] hold record hash,
--   KEYS[4] pending zset
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] attempt, ARGV[6] lease ms
-- Returns {C_OK, record json} | {C_HOLD_STATE, status} (not pending, or another attempt)
--   | {C_NO_HOLD, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_hold(KEYS[3])
if err then return err end
if doc.status ~= 'pending' or doc.attempt ~= tonumber(ARGV[5]) then
  return reply(ctx, C_HOLD_STATE, doc.status)
end
doc.status, doc.lease_until = 'compensating', ctx.now + tonumber(ARGV[6])
return reply(ctx, C_OK, save_hold(ctx, KEYS[3], KEYS[4], doc, 'abort'))

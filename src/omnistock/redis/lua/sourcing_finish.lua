-- sourcing_finish.lua: every part of the attempt is held: pending -> held (out of the pending set;
-- it lives on as long as its parts may, then as long as finished reservations do).
-- KEYS[1] stream, KEYS[2] idempotency record (unused placeholder), KEYS[3] hold record hash,
--   KEYS[4] pending zset
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] attempt, ARGV[6] retention ms
-- Returns {C_OK, record json} | {C_HOLD_STATE, status} (not pending, or another attempt: the
--   record is left as it is) | {C_NO_HOLD, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_hold(KEYS[3])
if err then return err end
if doc.status ~= 'pending' or doc.attempt ~= tonumber(ARGV[5]) then
  return reply(ctx, C_HOLD_STATE, doc.status)
end
doc.status = 'held'
local json = save_hold(ctx, KEYS[3], KEYS[4], doc, 'finish', doc.request.ttl_ms + tonumber(ARGV[6]))
return reply(ctx, C_OK, json)

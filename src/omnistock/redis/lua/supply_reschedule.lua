-- supply_reschedule.lua: move an open supply's ETA: its outstanding units move in the incoming
-- schedules; positions do not change (no version bump, no position event).
-- KEYS: the supply layout of _lib.lua
-- ARGV[1..4] actor, idempotency hash, idempotency ttl ms, idempotency key; ARGV[5] retention ms;
--   ARGV[6] the new eta ms
-- Returns {C_OK, supply json} | {C_NO_SUPPLY, ''} | {C_SUPPLY_DONE, status} | {C_STALE, ''}
--   | {C_IDEMPOTENCY, ''}; a replay adds a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_supply(KEYS)
if err then return err end
if doc.status ~= 'open' and doc.status ~= 'partially_received' then
  return reply(ctx, C_SUPPLY_DONE, doc.status)
end
doc.eta = tonumber(ARGV[6])
for i, line in ipairs(doc.lines) do
  local out = outstanding_of(line)
  if out > 0 then
    redis.call('ZADD', KEYS[KS_LINES + 2 * (i - 1) + 1], 'XX', doc.eta, supply_member(doc.id, out))
  end
end
return reply(ctx, C_OK, save_supply(ctx, KEYS, doc, 'reschedule', tonumber(ARGV[5])))

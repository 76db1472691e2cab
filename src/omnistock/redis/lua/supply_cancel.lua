-- supply_cancel.lua: cancel an open supply: what is outstanding leaves incoming and the
-- schedules; what was received stays on hand.
-- KEYS: the supply layout of _lib.lua
-- ARGV[1..4] actor, idempotency hash, idempotency ttl ms, idempotency key; ARGV[5] retention ms
-- Returns {C_OK, supply json} | {C_NO_SUPPLY, ''} | {C_SUPPLY_DONE, status} | {C_STALE, ''}
--   | {C_IDEMPOTENCY, ''}; a replay adds a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_supply(KEYS)
if err then return err end
if doc.status ~= 'open' and doc.status ~= 'partially_received' then
  return reply(ctx, C_SUPPLY_DONE, doc.status)
end
local loc = load_loc(KEYS[KS_LOC]) or { ss = 0, lt = 0, fence = 0 }
for i, line in ipairs(doc.lines) do
  supply_line_change(ctx, KEYS, doc, loc, i, outstanding_of(line), 0, 0, 'supply_cancelled')
end
doc.status = 'cancelled'
return reply(ctx, C_OK, save_supply(ctx, KEYS, doc, 'cancel', tonumber(ARGV[5])))

-- supply_receive.lua: receive units of an open supply: on_hand grows by what is received,
-- incoming falls by the outstanding part of it (never below 0). Units beyond a line's
-- outstanding (an over-receipt) go on hand too, unless refused by ARGV[6].
-- KEYS: the supply layout of _lib.lua
-- ARGV[1..4] actor, idempotency hash, idempotency ttl ms, idempotency key; ARGV[5] retention ms;
--   ARGV[6] '1' over-receipt allowed, '0' refused; ARGV[7] '1' when lines follow ('0': receive
--   everything outstanding), then pairs ARGV[8+2i] sku, ARGV[9+2i] qty (skus distinct)
-- Returns {C_OK, supply json} | {C_NO_SUPPLY, ''} | {C_SUPPLY_DONE, status} | {C_STALE, ''}
--   | {C_NOT_IN_SUPPLY, json [request line index, sku]}
--   | {C_NOT_ENOUGH, json [request line index, location, sku, 'outstanding', qty, outstanding]}
--     (over-receipt refused) | {C_QUANTITY, json [request line index, 'qty', on_hand]}
--   | {C_IDEMPOTENCY, ''}; nothing is written on a refusal; a replay adds a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_supply(KEYS)
if err then return err end
if doc.status ~= 'open' and doc.status ~= 'partially_received' then
  return reply(ctx, C_SUPPLY_DONE, doc.status)
end
local loc = load_loc(KEYS[KS_LOC]) or { ss = 0, lt = 0, fence = 0 }

local take, code, payload = plan_receipt(doc, ARGV, C_NOT_IN_SUPPLY, doc.location,
  function(i) return KEYS[KS_LINES + 2 * (i - 1)] end)
if not take then return reply(ctx, code, payload) end

local finished = true
for i, line in ipairs(doc.lines) do
  local qty = take[i] or 0
  local before = outstanding_of(line)
  line.received = line.received + qty
  local after = outstanding_of(line)
  if after > 0 then finished = false end
  supply_line_change(ctx, KEYS, doc, loc, i, before, after, qty, 'supply_received')
end
doc.status = finished and 'received' or 'partially_received'
return reply(ctx, C_OK, save_supply(ctx, KEYS, doc, 'receive', tonumber(ARGV[5])))

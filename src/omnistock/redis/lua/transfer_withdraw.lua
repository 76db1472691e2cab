-- transfer_withdraw.lua: the `to` side of a cancel (on the shadow, in the partition of `to`):
-- nothing received -> the outstanding units leave `to`'s incoming and schedules, shadow
-- cancelled. No shadow yet (arrival never ran) -> a cancelled shadow is written as a tombstone,
-- so a late arrival does nothing. Refused once anything was received.
-- KEYS: the shadow layout of _lib.lua
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] the record JSON
-- Returns {C_OK, shadow json} (third element 1 when cancelled already)
--   | {C_TRANSFER_STATE, status} (units were received: partially_received or received)
--   | {C_STALE, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local json = redis.call('HGET', KEYS[KT_SHADOW], 'doc')
local doc
if json then
  doc = cjson.decode(json)
  if doc.status == 'cancelled' then return { C_OK, json, 1, '', '' } end
else
  local rec = cjson.decode(ARGV[5])
  doc = { id = rec.id, side = 'to', status = 'in_transit', to = rec.to, eta = rec.eta,
          ref = rec.ref, created_at = rec.created_at, actor = rec.actor, lines = rec.lines }
  doc['from'] = rec['from']
  for _, line in ipairs(doc.lines) do line.received = 0 end
end
if #KEYS - KT_TO_LINES + 1 ~= 2 * #doc.lines then return reply(ctx, C_STALE, '') end
for _, line in ipairs(doc.lines) do
  if line.received > 0 then return reply(ctx, C_TRANSFER_STATE, doc.status) end
end
if json then
  local loc = load_loc(KEYS[KT_TO_LOC]) or { ss = 0, lt = 0, fence = 0 }
  for i, line in ipairs(doc.lines) do
    transfer_line_change(ctx, KEYS, doc, loc, i, outstanding_of(line), 0, 0, 'transfer_cancelled')
  end
end
doc.status = 'cancelled'
return reply(ctx, C_OK, save_transfer(ctx, KEYS[KT_SHADOW], nil, doc, 'withdraw', 0))

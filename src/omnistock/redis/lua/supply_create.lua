-- supply_create.lua: record a supply (stock expected at a location by an ETA): each line adds
-- its qty to the position's incoming and its schedule.
-- KEYS: the supply layout of _lib.lua (stream, idempotency, supply hash, open set, location meta,
--   sku index, then per line its position and incoming schedule)
-- ARGV[1..4] actor, idempotency hash, idempotency ttl ms, idempotency key; ARGV[5] retention ms;
--   ARGV[6] supply id, ARGV[7] location, ARGV[8] eta ms, ARGV[9] kind, ARGV[10] ref ('' none),
--   then per line i (from 0): ARGV[11+2i] sku, ARGV[12+2i] qty (skus distinct)
-- Returns {C_OK, supply json} | {C_NO_LOCATION, location} | {C_IDEMPOTENCY, ''}
--   | {C_QUANTITY, json [line index, 'qty', incoming it would make]} (nothing written);
--   a replay returns the recorded reply with a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local loc_id = ARGV[7]
local loc = load_loc(KEYS[KS_LOC])
if not loc then return reply(ctx, C_NO_LOCATION, loc_id) end

local n = (#KEYS - KS_LINES + 1) / 2
for i = 0, n - 1 do
  local inc = tonumber(redis.call('HGET', KEYS[KS_LINES + 2 * i], 'in')) or 0
  local after = inc + tonumber(ARGV[12 + 2 * i])
  if over_cap(after) then return reply(ctx, C_QUANTITY, cjson.encode({ i, 'qty', after })) end
end

local doc = { id = ARGV[6], location = loc_id, eta = tonumber(ARGV[8]), status = 'open',
              kind = ARGV[9], created_at = ctx.now, updated_at = ctx.now, actor = ctx.actor,
              lines = {} }
if ARGV[10] ~= '' then doc.ref = ARGV[10] end
for i = 1, n do
  doc.lines[i] = { sku = ARGV[9 + 2 * i], qty = tonumber(ARGV[10 + 2 * i]), received = 0 }
end
for i = 1, n do
  supply_line_change(ctx, KEYS, doc, loc, i, 0, doc.lines[i].qty, 0, 'supply_created')
end
return reply(ctx, C_OK, save_supply(ctx, KEYS, doc, 'create', tonumber(ARGV[5])))

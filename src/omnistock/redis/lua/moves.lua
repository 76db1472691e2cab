-- moves.lua: move units on hand between sellable and unsellable (damaged, quality control,
-- inspection passed...) at positions of one partition. on_hand does not change; unsellable does,
-- and with it available. The call is atomic: every item is checked (in order, items of one
-- position counted together) before anything is written.
-- KEYS[1] stream, KEYS[2] idempotency record, then per item i (from 0): KEYS[3+3i] position,
--   KEYS[4+3i] location sku index, KEYS[5+3i] location meta
-- ARGV[1] actor, ARGV[2] idempotency body hash ('' = none), ARGV[3] idempotency ttl ms,
--   ARGV[4] idempotency key, then per item i: ARGV[5+6i] location, sku, qty (> 0),
--   to ('unsellable' | 'sellable'), reason, ref
-- Returns {C_OK, json [position view, ...]} | {C_NO_LOCATION, location} | {C_IDEMPOTENCY, ''}
--   | {C_NOT_ENOUGH, json [item index, location, sku, state moved from, requested, there]}
--     (nothing written: more than the source state holds; sellable = on_hand - unsellable);
--   a replay returns the recorded reply with a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end

local n = (#KEYS - 2) / 3
local locs, metas = {}, {}
for i = 0, n - 1 do
  local loc = load_loc_cached(metas, KEYS[5 + 3 * i])
  if not loc then return reply(ctx, C_NO_LOCATION, ARGV[5 + 6 * i]) end
  locs[i] = loc
end

-- Check every item first: [key] = {oh, u} as the earlier items leave it.
local running = {}
for i = 0, n - 1 do
  local a = 5 + 6 * i
  local key = KEYS[3 + 3 * i]
  local cur = running[key]
  if cur == nil then
    local f = redis.call('HMGET', key, 'oh', 'u')
    cur = { oh = tonumber(f[1]) or 0, u = tonumber(f[2]) or 0 }
    running[key] = cur
  end
  local qty, to = tonumber(ARGV[a + 2]), ARGV[a + 3]
  local from, there = 'unsellable', cur.u
  if to == 'unsellable' then from, there = 'sellable', math.max(0, cur.oh - cur.u) end
  if qty > there then
    return reply(ctx, C_NOT_ENOUGH, cjson.encode({ i, ARGV[a], ARGV[a + 1], from, qty, there }))
  end
  if to == 'unsellable' then cur.u = cur.u + qty else cur.u = cur.u - qty end
end

local out = {}
for i = 0, n - 1 do
  local a = 5 + 6 * i
  local loc_id, sku, qty = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local key, loc = KEYS[3 + 3 * i], locs[i]
  local old = load_pos(key, loc)
  local u = old.u + qty
  if ARGV[a + 3] ~= 'unsellable' then u = old.u - qty end
  local new = { oh = old.oh, r = old.r, ss = old.ss, own = old.own, u = u }
  out[i + 1] = save_pos(ctx, key, KEYS[4 + 3 * i], loc_id, sku, loc, old, new,
    { kind = 'move', reason = ARGV[a + 4], ref = ARGV[a + 5] })
end
return reply(ctx, C_OK, cjson.encode(out))

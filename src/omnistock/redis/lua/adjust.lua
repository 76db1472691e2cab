-- adjust.lua: apply stock deltas (receipts, sales, returns...) to positions of one partition.
-- Each item is applied atomically (the whole call is); on_hand may fall below reserved or zero:
-- a till sale has happened and is recorded, never refused.
-- An item in state 'unsellable' changes unsellable by the same delta (a return in bad condition,
-- a write-off of damaged units); unsellable never goes below 0.
-- KEYS[1] stream, KEYS[2] idempotency record, then per item i (from 0): KEYS[3+3i] position,
--   KEYS[4+3i] location sku index, KEYS[5+3i] location meta
-- ARGV[1] actor, ARGV[2] idempotency body hash ('' = none), ARGV[3] idempotency ttl ms,
--   ARGV[4] idempotency key (for the ledger), then per item i: ARGV[5+5i] location, sku, delta,
--   reason, ref; then optionally ARGV[5+5n] (n items) the items' states, one character each:
--   'u' unsellable, 's' sellable (absent: all sellable)
-- Returns {C_OK, json [position view, ...]} | {C_NO_LOCATION, location} | {C_IDEMPOTENCY, ''}
--   | {C_QUANTITY, json [item index, 'delta', on_hand it would make]} (nothing written: an
--   on_hand past +-MAX_QUANTITY, items of one position counted in order)
--   | {C_NOT_ENOUGH, json [item index, location, sku, 'unsellable', units asked off, there]}
--   (nothing written: an unsellable item taking off more than the position's unsellable);
--   a replay returns the recorded reply with a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end

local n = (#KEYS - 2) / 3
local states = ARGV[5 + 5 * n] or ''
local function unsellable(i) return string.sub(states, i + 1, i + 1) == 'u' end
local locs, metas = {}, {}
for i = 0, n - 1 do
  local loc_id = ARGV[5 + 5 * i]
  local loc = load_loc_cached(metas, KEYS[5 + 3 * i])
  if not loc then return reply(ctx, C_NO_LOCATION, loc_id) end
  locs[i] = loc
end

-- Every result is checked before anything is written.
local running, running_u = {}, {}
for i = 0, n - 1 do
  local key, a = KEYS[3 + 3 * i], 5 + 5 * i
  local oh = running[key]
  if oh == nil then oh = tonumber(redis.call('HGET', key, 'oh')) or 0 end
  local delta = tonumber(ARGV[a + 2])
  oh = oh + delta
  if over_cap(oh) then return reply(ctx, C_QUANTITY, cjson.encode({ i, 'delta', oh })) end
  running[key] = oh
  if unsellable(i) then
    local u = running_u[key]
    if u == nil then u = tonumber(redis.call('HGET', key, 'u')) or 0 end
    if u + delta < 0 then
      return reply(ctx, C_NOT_ENOUGH,
        cjson.encode({ i, ARGV[a], ARGV[a + 1], 'unsellable', -delta, u }))
    end
    running_u[key] = u + delta
  end
end

local out = {}
for i = 0, n - 1 do
  local a = 5 + 5 * i
  local loc_id, sku, delta = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local key, loc = KEYS[3 + 3 * i], locs[i]
  local old = load_pos(key, loc)
  local new = { oh = old.oh + delta, r = old.r, ss = old.ss, own = old.own }
  if unsellable(i) then new.u = old.u + delta end
  out[i + 1] = save_pos(ctx, key, KEYS[4 + 3 * i], loc_id, sku, loc, old, new,
    { kind = 'adjust', reason = ARGV[a + 3], ref = ARGV[a + 4] })
end
return reply(ctx, C_OK, cjson.encode(out))

-- adjust.lua: apply stock deltas (receipts, sales, returns...) to positions of one partition.
-- Each item is applied atomically (the whole call is); on_hand may fall below reserved or zero:
-- a till sale has happened and is recorded, never refused.
-- KEYS[1] stream, KEYS[2] idempotency record, then per item i (from 0): KEYS[3+3i] position,
--   KEYS[4+3i] location sku index, KEYS[5+3i] location meta
-- ARGV[1] actor, ARGV[2] idempotency body hash ('' = none), ARGV[3] idempotency ttl ms,
--   ARGV[4] idempotency key (for the ledger), then per item i: ARGV[5+5i] location, sku, delta,
--   reason, ref
-- Returns {C_OK, json [position view, ...]} | {C_NO_LOCATION, location} | {C_IDEMPOTENCY, ''}
--   | {C_QUANTITY, json [item index, 'delta', on_hand it would make]} (nothing written: an
--   on_hand past +-MAX_QUANTITY, items of one position counted in order);
--   a replay returns the recorded reply with a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end

local n = (#KEYS - 2) / 3
local locs, metas = {}, {}
for i = 0, n - 1 do
  local loc_id = ARGV[5 + 5 * i]
  local loc = load_loc_cached(metas, KEYS[5 + 3 * i])
  if not loc then return reply(ctx, C_NO_LOCATION, loc_id) end
  locs[i] = loc
end

-- Every result is checked before anything is written.
local running = {}
for i = 0, n - 1 do
  local key = KEYS[3 + 3 * i]
  local oh = running[key]
  if oh == nil then oh = tonumber(redis.call('HGET', key, 'oh')) or 0 end
  oh = oh + tonumber(ARGV[7 + 5 * i])
  if over_cap(oh) then return reply(ctx, C_QUANTITY, cjson.encode({ i, 'delta', oh })) end
  running[key] = oh
end

local out = {}
for i = 0, n - 1 do
  local a = 5 + 5 * i
  local loc_id, sku, delta = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local key, loc = KEYS[3 + 3 * i], locs[i]
  local old = load_pos(key, loc)
  local new = { oh = old.oh + delta, r = old.r, ss = old.ss, own = old.own }
  out[i + 1] = save_pos(ctx, key, KEYS[4 + 3 * i], loc_id, sku, loc, old, new,
    { kind = 'adjust', reason = ARGV[a + 3], ref = ARGV[a + 4] })
end
return reply(ctx, C_OK, cjson.encode(out))

-- set.lua: set absolute on_hand (a cycle count or an import), and optionally a position's own
-- safety stock, for positions of one partition. A position whose values do not change is left
-- alone: no version bump, no event. With expected versions, all are checked before any change.
-- KEYS[1] stream, KEYS[2] idempotency record, then per item i (from 0): KEYS[3+3i] position,
--   KEYS[4+3i] location sku index, KEYS[5+3i] location meta
-- ARGV[1] actor, ARGV[2] idempotency body hash ('' = none), ARGV[3] idempotency ttl ms,
--   ARGV[4] idempotency key, ARGV[5] kind ('set' or 'import'), ARGV[6] '1' to return the
--   positions ('0': bulk imports need only the outcome), then per item i: ARGV[7+7i] location,
--   sku, on_hand, safety stock ('' keep, '-' clear, n set), expected version ('' any), reason, ref
-- Returns {C_OK, json [position view, ...] (or '')} | {C_VERSION, json [location, sku, version]}
--   | {C_NO_LOCATION, location} | {C_IDEMPOTENCY, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end

local kind, views = ARGV[5], ARGV[6] == '1'
local n = (#KEYS - 2) / 3
local locs, metas = {}, {}
for i = 0, n - 1 do
  local a = 7 + 7 * i
  local loc = load_loc_cached(metas, KEYS[5 + 3 * i])
  if not loc then return reply(ctx, C_NO_LOCATION, ARGV[a]) end
  local expected = ARGV[a + 4]
  if expected ~= '' then
    local v = tonumber(redis.call('HGET', KEYS[3 + 3 * i], 'v')) or 0
    if tonumber(expected) ~= v then
      return reply(ctx, C_VERSION, cjson.encode({ ARGV[a], ARGV[a + 1], v }))
    end
  end
  locs[i] = loc
end

local out = {}
for i = 0, n - 1 do
  local a = 7 + 7 * i
  local loc_id, sku, oh, ss_arg = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local key, loc = KEYS[3 + 3 * i], locs[i]
  local old = load_pos(key, loc)
  local own = old.own
  if ss_arg == '-' then own = nil elseif ss_arg ~= '' then own = tonumber(ss_arg) end
  if oh == old.oh and own == old.own then
    out[i + 1] = view(loc_id, sku, old, loc, old.ts)
  else
    if own ~= old.own then
      if own == nil then redis.call('HDEL', key, 'ss') else redis.call('HSET', key, 'ss', own) end
    end
    local new = { oh = oh, r = old.r, ss = own or loc.ss, own = own }
    out[i + 1] = save_pos(ctx, key, KEYS[4 + 3 * i], loc_id, sku, loc, old, new,
      { kind = kind, reason = ARGV[a + 5], ref = ARGV[a + 6] })
  end
end
return reply(ctx, C_OK, views and cjson.encode(out) or '')

-- set.lua: set absolute on_hand (a cycle count or an import), and optionally a position's own
-- safety stock, for positions of one partition. A position whose values do not change is left
-- alone: no version bump, no event. With expected versions, all are checked before any change.
-- Imports send hundreds of rows per call, so the rows travel as one MessagePack argument, each
-- location's keys are passed once, and the per-row path is written out here (one HMGET, one
-- HSET, one XADD, no tables but the event's, no field it does not need) instead of going through
-- load_pos/save_pos; the event it appends is save_pos's, field for field (domain/events.py's
-- PositionEvent).
-- KEYS[1] stream, KEYS[2] idempotency record, then per location j of the call (from 0):
--   KEYS[3+2j] location meta, KEYS[4+2j] location sku index; then per item i (from 0):
--   KEYS[3+2m+i] position (m = number of locations)
-- ARGV[1] actor, ARGV[2] idempotency body hash ('' = none), ARGV[3] idempotency ttl ms,
--   ARGV[4] idempotency key, ARGV[5] kind ('set' or 'import'), ARGV[6] '1' to return the
--   positions ('0': bulk imports need only the outcome), ARGV[7] MessagePack array of the m
--   location ids, ARGV[8] MessagePack array of 7 values per item i: its location (index from 0
--   into ARGV[7]), sku, on_hand, safety stock ('' keep, '-' clear, n set), expected version
--   ('' any), reason, ref
-- Returns {C_OK, json [position view, ...] (or '')} | {C_VERSION, json [location, sku, version]}
--   | {C_NO_LOCATION, location} | {C_IDEMPOTENCY, ''}
--   | {C_QUANTITY, json [item index, 'on_hand'|'safety_stock', value]} (nothing written)
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end

local kind, views = ARGV[5], ARGV[6] == '1'
local loc_ids, items = cmsgpack.unpack(ARGV[7]), cmsgpack.unpack(ARGV[8])
local n, pos0 = #items / 7, 3 + 2 * #loc_ids -- pos0: KEYS index of item 0's position
local locs = {}
for i = 0, n - 1 do
  local a = 7 * i
  local j = items[a + 1] + 1
  local loc = locs[j]
  if loc == nil then
    loc = load_loc(KEYS[1 + 2 * j])
    if not loc then return reply(ctx, C_NO_LOCATION, loc_ids[j]) end
    locs[j] = loc
  end
  if over_cap(items[a + 3]) then
    return reply(ctx, C_QUANTITY, cjson.encode({ i, 'on_hand', items[a + 3] }))
  end
  local ss_arg = items[a + 4]
  if type(ss_arg) == 'number' and over_cap(ss_arg) then
    return reply(ctx, C_QUANTITY, cjson.encode({ i, 'safety_stock', ss_arg }))
  end
  local expected = items[a + 5]
  if expected ~= '' then
    local v = tonumber(redis.call('HGET', KEYS[pos0 + i], 'v')) or 0
    if expected ~= v then
      return reply(ctx, C_VERSION, cjson.encode({ loc_ids[j], items[a + 2], v }))
    end
  end
end

local call, pack, actor, idem, now = redis.call, cmsgpack.pack, ctx.actor, ctx.idem, ctx.now
local out = {}
for i = 0, n - 1 do
  local a = 7 * i
  local j = items[a + 1] + 1
  local key, loc, loc_id, sku = KEYS[pos0 + i], locs[j], loc_ids[j], items[a + 2]
  local oh, ss_arg = items[a + 3], items[a + 4]
  local f = call('HMGET', key, 'oh', 'r', 'ss', 'v', 'u', 'in', 'ts')
  local old_oh, r, old_own, v = tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]),
    tonumber(f[4]) or 0
  local u, inc = tonumber(f[5]) or 0, tonumber(f[6]) or 0
  local own, ts = old_own, tonumber(f[7]) or 0
  if ss_arg == '-' then own = nil elseif ss_arg ~= '' then own = ss_arg end
  local ss = own or loc.ss
  if oh ~= old_oh or own ~= old_own then
    if own ~= old_own then
      if own == nil then call('HDEL', key, 'ss') else call('HSET', key, 'ss', own) end
    end
    v, ts = v + 1, now
    if v == 1 then -- a new position, for its location's sku index too
      call('HSET', key, 'oh', oh, 'r', r, 'v', v, 'ts', now)
      add_to_index(ctx, KEYS[2 + 2 * j], sku)
    else -- an existing one keeps its r
      call('HSET', key, 'oh', oh, 'v', v, 'ts', now)
    end
    local avail = avail_of(oh, r, ss, u)
    append(ctx, 'p', pack({ loc_id, sku, kind, items[a + 6], items[a + 7], actor, idem, '',
      oh - old_oh, 0, oh, r, ss, own or -1, v, avail, status_of(avail, loc.lt),
      status_of(avail_of(old_oh, r, old_own or loc.ss, u), loc.lt), now, 0, u, 0, inc }))
  end
  if views then
    out[i + 1] = view(loc_id, sku, { oh = oh, r = r, ss = ss, v = v, u = u, inc = inc }, loc, ts)
  end
end
return reply(ctx, C_OK, views and cjson.encode(out) or '')

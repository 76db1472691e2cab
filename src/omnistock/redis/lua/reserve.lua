-- reserve.lua: hold stock for a new reservation at one location: all lines or none, or with
-- allow_partial as much of each line as is available (at least one unit overall).
-- With a channel, each line is held against the channel's availability: the location meta's
-- fence c:<channel> is taken off on top of safety stock (shortages report that figure).
-- KEYS[1] stream, KEYS[2] idempotency record, KEYS[3] reservation hash, KEYS[4] expiry zset,
--   KEYS[5] location meta (ss, lt, c:<channel>), KEYS[6] location sku index, KEYS[7..] positions of the lines, in order
-- ARGV[1] actor, ARGV[2] idempotency body hash ('' = none), ARGV[3] idempotency ttl ms,
--   ARGV[4] idempotency key, ARGV[5] reservation id, ARGV[6] location, ARGV[7] ttl ms,
--   ARGV[8] channel ('' none), ARGV[9] ref ('' none), ARGV[10] allow_partial '1'|'0',
--   ARGV[11] owner: the creating API key's id ('' none), ARGV[12] its role ('' none),
--   then per line i (from 0): ARGV[13+2i] sku, ARGV[14+2i] qty (skus distinct)
-- Returns {C_OK, reservation json} | {C_SHORTAGE, json [[sku, requested, available], ...]}
--   | {C_NO_LOCATION, location} | {C_IDEMPOTENCY, ''}; a replay adds a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end

local loc_id = ARGV[6]
local loc = load_loc(KEYS[5], ARGV[8])
if not loc then return reply(ctx, C_NO_LOCATION, loc_id) end
local partial = ARGV[10] == '1'

local n = #KEYS - 6
local olds, holds, short, total = {}, {}, {}, 0
for i = 1, n do
  local qty = tonumber(ARGV[12 + 2 * i])
  local old = load_pos(KEYS[6 + i], loc)
  local a = avail_of(old.oh, old.r, old.ss, old.u, loc.fence)
  local hold = qty
  if a < qty then
    short[#short + 1] = { ARGV[11 + 2 * i], qty, a }
    hold = a
  end
  olds[i], holds[i], total = old, hold, total + hold
end
if #short > 0 and (not partial or total == 0) then
  return reply(ctx, C_SHORTAGE, cjson.encode(short))
end

local doc = { id = ARGV[5], location = loc_id, status = 'active', actor = ctx.actor,
              created_at = ctx.now, expires_at = ctx.now + tonumber(ARGV[7]), lines = {} }
if ARGV[8] ~= '' then doc.channel = ARGV[8] end
if ARGV[9] ~= '' then doc.ref = ARGV[9] end
if ARGV[11] ~= '' then doc.owner = ARGV[11] end
if ARGV[12] ~= '' then doc.owner_role = ARGV[12] end
for i = 1, n do
  local sku, old, hold = ARGV[11 + 2 * i], olds[i], holds[i]
  doc.lines[i] = { sku, tonumber(ARGV[12 + 2 * i]), hold, 0 }
  if hold > 0 then
    local new = { oh = old.oh, r = old.r + hold, ss = old.ss, own = old.own }
    save_pos(ctx, KEYS[6 + i], KEYS[6], loc_id, sku, loc, old, new,
      { kind = 'reserve', reason = 'reserve', ref = doc.ref, rid = doc.id })
  end
end
local json = cjson.encode(doc)
redis.call('HSET', KEYS[3], 'doc', json, 'st', 'active')
redis.call('ZADD', KEYS[4], doc.expires_at, doc.id)
emit_reservation(ctx, json, 'reserve')
return reply(ctx, C_OK, json)

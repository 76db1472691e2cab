-- sourcing_hold.lua: hold one part of a sourcing hold as an ordinary reservation (reserve.lua's
-- hold, channel fence included, all lines or none) carrying `sourcing` = the hold id. Keyed by
-- the part's reservation id: a replay finds the reservation and answers it while it is active
-- (one that has ended, or is past its expiry, no longer counts as held); a part undone before its
-- hold arrived is void and nothing is held.
-- KEYS[1] stream, KEYS[2] idempotency record (unused placeholder), KEYS[3] reservation hash,
--   KEYS[4] expiry zset, KEYS[5] location meta, KEYS[6] location sku index,
--   KEYS[7..#KEYS-1] positions of the lines, in order, KEYS[#KEYS] the part's void marker
-- ARGV[1..4] actor, '' , idempotency ttl ms, ''; ARGV[5] reservation id, ARGV[6] location,
--   ARGV[7] ttl ms, ARGV[8] channel ('' none), ARGV[9] ref ('' none), ARGV[10] owner ('' none),
--   ARGV[11] owner role ('' none), ARGV[12] sourcing hold id,
--   then per line i (from 0): ARGV[13+2i] sku, ARGV[14+2i] qty (skus distinct)
-- Returns {C_OK, reservation json} (third element 1 when it existed already: a replay)
--   | {C_SHORTAGE, json [[sku, requested, available], ...]} | {C_NO_LOCATION, location}
--   | {C_VOID, ''} | {C_NOT_ACTIVE, status} (held once, ended since: 'expired' when past due)
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return reply(ctx, C_VOID, '') end
local held = redis.call('HGET', KEYS[3], 'doc')
if held then
  local doc = cjson.decode(held)
  if doc.status == 'active' and doc.expires_at > ctx.now then return { C_OK, held, 1, '', '' } end
  return reply(ctx, C_NOT_ACTIVE, doc.status == 'active' and 'expired' or doc.status)
end
local pos, skus, qtys = {}, {}, {}
for i = 1, #KEYS - 7 do
  pos[i], skus[i], qtys[i] = KEYS[6 + i], ARGV[11 + 2 * i], tonumber(ARGV[12 + 2 * i])
end
local code, payload = hold_new(ctx, { res = KEYS[3], exp = KEYS[4], loc = KEYS[5], index = KEYS[6],
  pos = pos }, { id = ARGV[5], location = ARGV[6], ttl = tonumber(ARGV[7]), channel = ARGV[8],
  ref = ARGV[9], partial = false, owner = ARGV[10], owner_role = ARGV[11], sourcing = ARGV[12],
  skus = skus, qtys = qtys })
return reply(ctx, code, payload)

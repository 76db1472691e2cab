-- reserve.lua: hold stock for a new reservation at one location: all lines or none, or with
-- allow_partial as much of each line as is available (at least one unit overall).
-- With a channel, each line is held against the channel's availability: the location meta's
-- fence c:<channel> is taken off on top of safety stock (shortages report that figure).
-- The hold itself is _lib.lua's hold_new (shared with sourcing_hold.lua).
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
local pos, skus, qtys = {}, {}, {}
for i = 1, #KEYS - 6 do
  pos[i], skus[i], qtys[i] = KEYS[6 + i], ARGV[11 + 2 * i], tonumber(ARGV[12 + 2 * i])
end
local code, payload = hold_new(ctx, { res = KEYS[3], exp = KEYS[4], loc = KEYS[5], index = KEYS[6],
  pos = pos }, { id = ARGV[5], location = ARGV[6], ttl = tonumber(ARGV[7]), channel = ARGV[8],
  ref = ARGV[9], partial = ARGV[10] == '1', owner = ARGV[11], owner_role = ARGV[12],
  skus = skus, qtys = qtys })
return reply(ctx, code, payload)

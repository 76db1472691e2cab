-- commit.lua: turn an active reservation into a sale. Held units leave on_hand and reserved;
-- with explicit lines only those quantities are taken and the rest is released.
-- KEYS: the reservation layout of _lib.lua (stream, idempotency, reservation, expiry zset,
--   location meta, sku index, positions of its lines in order)
-- ARGV[1..4] actor, idempotency hash, idempotency ttl ms, idempotency key; ARGV[5] retention ms;
--   ARGV[6] '1' when lines follow, then pairs ARGV[7+2i] sku, ARGV[8+2i] qty (skus distinct)
-- Returns {C_OK, reservation json} | {C_NO_RESERVATION, ''} | {C_NOT_ACTIVE, status}
--   | {C_BAD_COMMIT, json [sku, requested, held]} | {C_STALE, ''} | {C_IDEMPOTENCY, ''};
--   a replay adds a third element 1. A reservation found past its expiry is expired first.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_reservation(KEYS)
if err then return err end
local retention = tonumber(ARGV[5])
expire_if_due(ctx, KEYS, doc, retention)
if doc.status ~= 'active' then return reply(ctx, C_NOT_ACTIVE, doc.status) end

local take = {}
if ARGV[6] == '1' then
  local wanted = {}
  for i = 7, #ARGV, 2 do wanted[ARGV[i]] = tonumber(ARGV[i + 1]) end
  for i, line in ipairs(doc.lines) do
    local q = wanted[line[1]]
    if q then
      if q > line[3] then return reply(ctx, C_BAD_COMMIT, cjson.encode({ line[1], q, line[3] })) end
      take[i] = q
      wanted[line[1]] = nil
    end
  end
  local sku, q = next(wanted)
  if sku then return reply(ctx, C_BAD_COMMIT, cjson.encode({ sku, q, 0 })) end
else
  for i, line in ipairs(doc.lines) do take[i] = line[3] end
end
return reply(ctx, C_OK, settle(ctx, KEYS, doc, 'committed', 'commit', take, retention))

-- transfer_create.lua: record a transfer in the partition of `from` and take its units off on
-- hand there, all lines or none, against `from`'s available. The record is pending (its lease
-- in the pending zset) until the `to` side is written (transfer_arrive.lua, then
-- transfer_confirm.lua); the courier finishes it if its driver does not.
-- KEYS: the record layout of _lib.lua with `from`'s meta, sku index and positions
-- ARGV[1..4] actor, idempotency hash, idempotency ttl ms, idempotency key; ARGV[5] lease ms;
--   ARGV[6] transfer id, ARGV[7] from, ARGV[8] to, ARGV[9] eta ms ('' none), ARGV[10] ref
--   ('' none), then per line i (from 0): ARGV[11+2i] sku, ARGV[12+2i] qty (skus distinct)
-- Returns {C_OK, record json} | {C_SHORTAGE, json [[sku, requested, available], ...]}
--   | {C_NO_LOCATION, from} | {C_TRANSFER_STATE, status} (the id exists) | {C_IDEMPOTENCY, ''};
--   nothing is written on a refusal; a replay returns the recorded reply with a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local loc = load_loc(KEYS[KT_LOC])
if not loc then return reply(ctx, C_NO_LOCATION, ARGV[7]) end
local existing = redis.call('HGET', KEYS[KT_REC], 'st')
if existing then return reply(ctx, C_TRANSFER_STATE, existing) end
local n = #KEYS - KT_LINES + 1
local olds, short = {}, {}
for i = 1, n do
  local qty = tonumber(ARGV[10 + 2 * i])
  local old = load_pos(KEYS[KT_LINES + i - 1], loc)
  local a = avail_of(old.oh, old.r, old.ss, old.u)
  if a < qty then short[#short + 1] = { ARGV[9 + 2 * i], qty, a } end
  olds[i] = old
end
if #short > 0 then return reply(ctx, C_SHORTAGE, cjson.encode(short)) end

local doc = { id = ARGV[6], side = 'from', status = 'in_transit', to = ARGV[8],
              created_at = ctx.now, actor = ctx.actor, lines = {}, pending = true,
              lease_until = ctx.now + tonumber(ARGV[5]) }
doc['from'] = ARGV[7]
if ARGV[9] ~= '' then doc.eta = tonumber(ARGV[9]) end
if ARGV[10] ~= '' then doc.ref = ARGV[10] end
for i = 1, n do
  local sku, qty, old = ARGV[9 + 2 * i], tonumber(ARGV[10 + 2 * i]), olds[i]
  doc.lines[i] = { sku = sku, qty = qty, received = 0 }
  local new = { oh = old.oh - qty, r = old.r, ss = old.ss, own = old.own }
  save_pos(ctx, KEYS[KT_LINES + i - 1], KEYS[KT_INDEX], ARGV[7], sku, loc, old, new,
    { kind = 'transfer', reason = 'transfer_out', ref = doc.id })
end
return reply(ctx, C_OK, save_transfer(ctx, KEYS[KT_REC], KEYS[KT_PENDING], doc, 'create', 0))

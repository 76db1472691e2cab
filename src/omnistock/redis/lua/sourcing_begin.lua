-- sourcing_begin.lua: record a new sourcing hold (status pending, attempt 1, its parts named with
-- fresh reservation ids) in the record's partition, before any part is held; the courier may
-- take it over once its lease has passed. Idempotent: a replay answers the recorded hold id.
-- With shortages (a call with an Idempotency-Key that found no option at all) the record is
-- made failed at once, with no parts, so a replay answers the same 409.
-- KEYS[1] stream, KEYS[2] idempotency record, KEYS[3] hold record hash, KEYS[4] pending zset
-- ARGV[1..4] actor, idempotency hash ('' none), idempotency ttl ms, idempotency key;
--   ARGV[5] the record JSON (domain/sourcing_holds.py; times are set here), ARGV[6] lease ms,
--   ARGV[7] shortages JSON [[sku, requested, available], ...] ('' = none: pending),
--   ARGV[8] retention ms (of a record made failed)
-- Returns {C_OK, hold id} | {C_HOLD_STATE, status} (the id exists already)
--   | {C_IDEMPOTENCY, ''}; a replay adds a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local existing = redis.call('HGET', KEYS[3], 'st')
if existing then return reply(ctx, C_HOLD_STATE, existing) end
local doc = cjson.decode(ARGV[5])
doc.status, doc.attempt = 'pending', 1
doc.created_at, doc.lease_until = ctx.now, ctx.now + tonumber(ARGV[6])
if ARGV[7] ~= '' then
  doc.status, doc.shortages = 'failed', cjson.decode(ARGV[7])
  save_hold(ctx, KEYS[3], KEYS[4], doc, 'fail', tonumber(ARGV[8]))
else
  save_hold(ctx, KEYS[3], KEYS[4], doc, 'begin')
end
return reply(ctx, C_OK, doc.id)

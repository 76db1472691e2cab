-- sourcing_begin.lua: record a new sourcing hold (status pending, attempt 1, its parts named with
-- fresh reservation ids) in the record's partition, before any part is held; the courier may
-- take it over once its lease has passed. Idempotent: a replay answers the recorded hold id.
-- KEYS[1] stream, KEYS[2] idempotency record, KEYS[3] hold record hash, KEYS[4] pending zset
-- ARGV[1..4] actor, idempotency hash ('' none), idempotency ttl ms, idempotency key;
--   ARGV[5] the record JSON (domain/sourcing_holds.py; times are set here), ARGV[6] lease ms
-- Returns {C_OK, hold id} | {C_HOLD_STATE, status} (the id exists already)
--   | {C_IDEMPOTENCY, ''}; a replay adds a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local existing = redis.call('HGET', KEYS[3], 'st')
if existing then return reply(ctx, C_HOLD_STATE, existing) end
local doc = cjson.decode(ARGV[5])
doc.status, doc.attempt = 'pending', 1
doc.created_at, doc.lease_until = ctx.now, ctx.now + tonumber(ARGV[6])
save_hold(ctx, KEYS[3], KEYS[4], doc, 'begin')
return reply(ctx, C_OK, doc.id)

-- sourcing_release.lua: a held sourcing hold is released (its caller has released every active
-- part with release.lua first): held -> released. Releasing a released one answers it again.
-- KEYS[1] stream, KEYS[2] idempotency record (unused placeholder), KEYS[3] hold record hash,
--   KEYS[4] pending zset
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] retention ms, ARGV[6] the record as
--   Postgres keeps it ('' none): used when Redis no longer has it (a part outlived it, extended)
-- Returns {C_OK, record json} (third element 1 when it was released already)
--   | {C_HOLD_STATE, status} (pending, compensating or failed) | {C_NO_HOLD, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_hold(KEYS[3])
if err then
  if ARGV[6] == '' then return err end
  doc = cjson.decode(ARGV[6])
end
if doc.status == 'released' then return { C_OK, redis.call('HGET', KEYS[3], 'doc'), 1, '', '' } end
if doc.status ~= 'held' then return reply(ctx, C_HOLD_STATE, doc.status) end
doc.status = 'released'
return reply(ctx, C_OK, save_hold(ctx, KEYS[3], KEYS[4], doc, 'release', tonumber(ARGV[5])))

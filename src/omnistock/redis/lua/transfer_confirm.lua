-- transfer_confirm.lua: the `to` side of a transfer is settled (arrived; or a cancel was refused
-- there because units were received): the record leaves the pending set, status in_transit, or
-- received (kept `retention` ms more) when the shadow says so. Only from the status the caller
-- saw, so a cancel under way is never undone by a late arrival's confirm.
-- KEYS: the record layout of _lib.lua (first four keys)
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] the status expected ('in_transit' or
--   'cancelling'), ARGV[6] the shadow's status, ARGV[7] retention ms
-- Returns {C_OK, record json} (third element 1 when nothing changed) | {C_NO_TRANSFER, ''}
--   | {C_TRANSFER_STATE, status} (not in the status expected)
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_transfer(KEYS[KT_REC])
if err then return err end
if doc.status ~= ARGV[5] then return reply(ctx, C_TRANSFER_STATE, doc.status) end
local status = ARGV[6] == 'received' and 'received' or 'in_transit'
if doc.status == status and not doc.pending then
  return { C_OK, redis.call('HGET', KEYS[KT_REC], 'doc'), 1, '', '' }
end
local changed = doc.status ~= status
doc.status, doc.pending = status, false
if not changed then
  -- Only the pending flag: Redis state, not persisted (no event: a transfer costs one event
  -- less). Postgres keeps the record pending, so a rebuild has the courier settle it again,
  -- which finds its `to` side written and only clears the flag.
  doc.updated_at = ctx.now
  local json = cjson.encode(doc)
  redis.call('HSET', KEYS[KT_REC], 'doc', json, 'st', doc.status)
  redis.call('ZREM', KEYS[KT_PENDING], doc.id)
  return reply(ctx, C_OK, json)
end
local kind = status == 'received' and 'close' or 'confirm'
return reply(ctx, C_OK, save_transfer(ctx, KEYS[KT_REC], KEYS[KT_PENDING], doc, kind,
  tonumber(ARGV[7])))

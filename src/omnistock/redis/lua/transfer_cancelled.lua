-- transfer_cancelled.lua: finish a cancel whose `to` side is withdrawn: the units go back on
-- hand at `from` (kind transfer, reason transfer_cancelled), record cancelling -> cancelled (out
-- of the pending set, kept `retention` ms more). Records the Idempotency-Key's reply.
-- KEYS: the record layout of _lib.lua with `from`'s meta, sku index and positions
-- ARGV[1..4] actor, idempotency hash, idempotency ttl ms, idempotency key; ARGV[5] retention ms
-- Returns {C_OK, record json} | {C_NO_TRANSFER, ''} | {C_TRANSFER_DONE, 'cancelled'}
--   | {C_TRANSFER_STATE, status} (not cancelling) | {C_STALE, ''} | {C_IDEMPOTENCY, ''};
--   a replay adds a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local doc, err = load_transfer(KEYS[KT_REC])
if err then return err end
if doc.status == 'cancelled' then return reply(ctx, C_TRANSFER_DONE, doc.status) end
if doc.status ~= 'cancelling' then return reply(ctx, C_TRANSFER_STATE, doc.status) end
if #KEYS - KT_LINES + 1 ~= #doc.lines then return reply(ctx, C_STALE, '') end
local loc = load_loc(KEYS[KT_LOC]) or { ss = 0, lt = 0, fence = 0 }
for i, line in ipairs(doc.lines) do
  local key = KEYS[KT_LINES + i - 1]
  local old = load_pos(key, loc)
  local new = { oh = old.oh + line.qty, r = old.r, ss = old.ss, own = old.own }
  save_pos(ctx, key, KEYS[KT_INDEX], doc['from'], line.sku, loc, old, new,
    { kind = 'transfer', reason = 'transfer_cancelled', ref = doc.id })
end
doc.status, doc.pending = 'cancelled', false
return reply(ctx, C_OK, save_transfer(ctx, KEYS[KT_REC], KEYS[KT_PENDING], doc, 'cancelled',
  tonumber(ARGV[5])))

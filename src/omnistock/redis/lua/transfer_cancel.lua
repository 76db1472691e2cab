-- transfer_cancel.lua: begin cancelling a transfer (on its record, in the partition of `from`):
-- in_transit (or cancelling: a retry) -> cancelling, pending with a fresh lease, so the courier
-- finishes the cancel if its driver does not. An Idempotency-Key is only checked here (a retry
-- of a cancel that finished answers its recorded reply); transfer_cancelled.lua records it.
-- KEYS: the record layout of _lib.lua (first four keys)
-- ARGV[1..4] actor, idempotency hash, idempotency ttl ms, idempotency key; ARGV[5] lease ms
-- Returns {C_OK, record json} | {C_NO_TRANSFER, ''} | {C_TRANSFER_DONE, status} (cancelled or
--   received) | {C_IDEMPOTENCY, ''}; a replay returns the recorded reply with a third element 1.
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
ctx.hash = '' -- checked above; the step that finishes the cancel records the reply
local doc, err = load_transfer(KEYS[KT_REC])
if err then return err end
if doc.status ~= 'in_transit' and doc.status ~= 'cancelling' then
  return reply(ctx, C_TRANSFER_DONE, doc.status)
end
doc.status, doc.pending = 'cancelling', true
doc.lease_until = ctx.now + tonumber(ARGV[5])
return reply(ctx, C_OK, save_transfer(ctx, KEYS[KT_REC], KEYS[KT_PENDING], doc, 'cancel', 0))

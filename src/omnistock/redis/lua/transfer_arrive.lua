-- transfer_arrive.lua: write a transfer's `to` side (its shadow) in the partition of `to`: each
-- line's qty joins `to`'s incoming and its schedule (member t:<id>:<qty> scored by eta, +inf
-- without one). Keyed by the transfer id: when the shadow exists (arrived already, or withdrawn
-- by a cancel first) nothing is done and it is answered as it is.
-- KEYS: the shadow layout of _lib.lua
-- ARGV[1..4] actor, '', idempotency ttl ms, ''; ARGV[5] the record JSON (as transfer_create wrote it)
-- Returns {C_OK, shadow json} (third element 1 when it existed) | {C_STALE, ''}
local ctx, stop = begin(KEYS, ARGV)
if stop then return stop end
local have = redis.call('HGET', KEYS[KT_SHADOW], 'doc')
if have then return { C_OK, have, 1, '', '' } end
local rec = cjson.decode(ARGV[5])
if #KEYS - KT_TO_LINES + 1 ~= 2 * #rec.lines then return reply(ctx, C_STALE, '') end
local loc = load_loc(KEYS[KT_TO_LOC]) or { ss = 0, lt = 0, fence = 0 }
local doc = { id = rec.id, side = 'to', status = 'in_transit', to = rec.to, eta = rec.eta,
              ref = rec.ref, created_at = rec.created_at, actor = rec.actor, lines = rec.lines }
doc['from'] = rec['from']
for i, line in ipairs(doc.lines) do
  line.received = 0
  transfer_line_change(ctx, KEYS, doc, loc, i, 0, line.qty, 0, 'transfer_incoming')
end
return reply(ctx, C_OK, save_transfer(ctx, KEYS[KT_SHADOW], nil, doc, 'arrive', 0))

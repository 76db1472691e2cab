-- _lib.lua: the helpers every operation shares, defined once at the top of the function library
-- scripts.py builds (each operation file becomes one function of it; never loaded on its own).
-- Conventions: times are ms from the Redis clock; a position hash holds oh (on hand), r (reserved),
-- ss (own safety stock, absent = the location's), u (unsellable: on hand but not for sale), in
-- (incoming: the total of its incoming schedule), v (version), ts (last change); a location meta
-- hash holds ss (safety stock), lt (limited threshold) and c:<channel> (the units of every sku
-- that channel may not take: its fence). Every changed position appends one
-- event (field p) to the partition stream; every reservation change appends one (field r); every
-- recorded idempotent reply appends one (field i), so Postgres can keep it for a rebuild. Their
-- layout is domain/events.py's.
-- Every script replies {code, payload, replayed (0|1), first event id, last event id}; the ids
-- span the events this call appended ('' when none), for acks that wait for Postgres.
-- A partition whose stream does not exist is not ready (Redis empty or being rebuilt): every
-- script then returns C_NOT_READY instead of acting on missing state.

local C_OK, C_SHORTAGE, C_VERSION, C_NO_RESERVATION, C_NOT_ACTIVE = 0, 1, 2, 3, 4
local C_IDEMPOTENCY, C_NO_LOCATION, C_BAD_COMMIT, C_STALE, C_NOT_DUE = 5, 6, 7, 8, 9
local C_NOT_READY, C_QUANTITY = 10, 11
local C_TOO_LONG = 20 -- reservation limits (extend past created_at + the longest lifetime)
local C_LIMITED = 30 -- ratelimit.lua: the request is over its API key's rate limit
-- Sourcing holds: a part's id was voided (undone before its hold arrived); the hold record is not
-- in the state the call expects (payload: its status); no such hold record.
local C_VOID, C_HOLD_STATE, C_NO_HOLD = 40, 41, 42
-- Stock states and supply (issue 13): more than a state holds; no such supply; a finished
-- supply (payload: its status).
local C_NOT_ENOUGH, C_NO_SUPPLY, C_SUPPLY_DONE, C_NOT_IN_SUPPLY = 50, 51, 52, 53
-- No quantity may pass this (API.md: 10^12 in any field; doubles and cjson stay exact far
-- beyond it). A change whose result would is refused before anything is written, with
-- C_QUANTITY and the payload json [item index in the call (0-based), field, refused result].
-- domain/stock.py's MAX_QUANTITY is the same number (tests/lua/test_quantity_caps.py checks they agree).
local MAX_QUANTITY = 1000000000000

local function over_cap(n)
  return n > MAX_QUANTITY or n < -MAX_QUANTITY
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- What can be promised; `fence` (a channel's, 0 or nil for none) is taken off on top of ss, and
-- unsellable units never are promisable. domain/stock.py's available and for_channel compute the
-- same number. The one place this is computed.
local function avail_of(oh, r, ss, u, fence)
  local a = oh - r - ss - (u or 0) - (fence or 0)
  if a < 0 then return 0 end
  return a
end

local function status_of(a, lt)
  if a <= 0 then return 'out_of_stock' end
  if a <= lt then return 'limited' end
  return 'in_stock'
end

-- Location meta or nil when the location is unknown; with `channel` ('' or nil: none) its
-- fence too (0 when the meta names none).
local function load_loc(key, channel)
  if channel == nil or channel == '' then
    local f = redis.call('HMGET', key, 'ss', 'lt')
    if not f[1] then return nil end
    return { ss = tonumber(f[1]), lt = tonumber(f[2]), fence = 0 }
  end
  local f = redis.call('HMGET', key, 'ss', 'lt', 'c:' .. channel)
  if not f[1] then return nil end
  return { ss = tonumber(f[1]), lt = tonumber(f[2]), fence = tonumber(f[3]) or 0 }
end

-- load_loc, remembering each location's meta for the rest of the call.
local function load_loc_cached(cache, key)
  local loc = cache[key]
  if loc == nil then
    loc = load_loc(key) or false
    cache[key] = loc
  end
  return loc or nil
end

local function load_pos(key, loc)
  local f = redis.call('HMGET', key, 'oh', 'r', 'ss', 'v', 'ts', 'u', 'in')
  local own = tonumber(f[3])
  return { oh = tonumber(f[1]) or 0, r = tonumber(f[2]) or 0, own = own,
           ss = own or loc.ss, v = tonumber(f[4]) or 0, ts = tonumber(f[5]) or 0,
           u = tonumber(f[6]) or 0, inc = tonumber(f[7]) or 0 }
end

-- The client view of a position, as returned to Python:
-- [loc, sku, oh, r, ss, a, status, v, ts, u, in] (redis/positions.py's PositionRow).
local function view(loc_id, sku, p, loc, ts)
  local a = avail_of(p.oh, p.r, p.ss, p.u)
  return { loc_id, sku, p.oh, p.r, p.ss, a, status_of(a, loc.lt), p.v, ts, p.u or 0, p.inc or 0 }
end

-- New positions join their location's sku index; the members are added in one SADD per index
-- when the script replies (an import adds thousands of skus of one location per call).
local function add_to_index(ctx, index_key, sku)
  local members = ctx.indexed[index_key]
  if members == nil then
    members = {}
    ctx.indexed[index_key] = members
  end
  members[#members + 1] = sku
end

local function flush_indexes(indexed)
  for index_key, members in pairs(indexed) do
    for i = 1, #members, 1000 do
      redis.call('SADD', index_key, unpack(members, i, math.min(i + 999, #members)))
    end
  end
end

-- Appends an event to the partition stream, remembering the ids this call wrote.
local function append(ctx, ...)
  local id = redis.call('XADD', ctx.stream, '*', ...)
  ctx.first = ctx.first or id
  ctx.last = id
end

-- Writes position `new` {oh, r, ss (effective), own, u?, inc?} (changed from `old`; u and inc
-- default to old's), bumps its version and appends its event.
-- ctx: stream, actor, now, idem; ev: kind, reason, ref, rid.
local function save_pos(ctx, key, index_key, loc_id, sku, loc, old, new, ev)
  new.v = old.v + 1
  new.u = new.u or old.u
  new.inc = new.inc or old.inc
  redis.call('HSET', key, 'oh', new.oh, 'r', new.r, 'v', new.v, 'ts', ctx.now)
  -- u and in are written only once they are used: most positions never have either.
  if new.u ~= old.u or new.inc ~= old.inc then
    redis.call('HSET', key, 'u', new.u, 'in', new.inc)
  end
  if old.v == 0 then add_to_index(ctx, index_key, sku) end
  local a = avail_of(new.oh, new.r, new.ss, new.u)
  local st = status_of(a, loc.lt)
  -- The field order is domain/events.py's PositionEvent (the last four came later: older
  -- entries end at ts).
  append(ctx, 'p', cmsgpack.pack({ loc_id, sku, ev.kind, ev.reason, ev.ref or '', ctx.actor,
    ctx.idem, ev.rid or '', new.oh - old.oh, new.r - old.r, new.oh, new.r, new.ss, new.own or -1,
    new.v, a, st, status_of(avail_of(old.oh, old.r, old.ss, old.u), loc.lt), ctx.now,
    new.u - old.u, new.u, new.inc - old.inc, new.inc }))
  return view(loc_id, sku, new, loc, ctx.now)
end

-- Appends the reservation event: the whole reservation document, and what happened to it.
local function emit_reservation(ctx, json, kind)
  append(ctx, 'r', json, 'k', kind)
end

-- Idempotency: a stored record is "hash\ncode\nfirst\nlast\npayload". Returns the reply to give
-- instead of running (a replay, or the mismatch code), or nil to run.
local function idem_check(key, hash)
  if hash == '' then return nil end
  local rec = redis.call('GET', key)
  if not rec then return nil end
  local parts, from = {}, 1
  for i = 1, 4 do
    local nl = string.find(rec, '\n', from, true)
    parts[i] = string.sub(rec, from, nl - 1)
    from = nl + 1
  end
  if parts[1] ~= hash then return { C_IDEMPOTENCY, '', 0, '', '' } end
  return { tonumber(parts[2]), string.sub(rec, from), 1, parts[3], parts[4] }
end

-- The script's reply; recorded (and appended as an `i` event) when the request carried an
-- Idempotency-Key.
local function reply(ctx, code, payload)
  flush_indexes(ctx.indexed)
  if ctx.hash ~= '' then
    -- The field order is domain/events.py's IdempotencyEvent.
    append(ctx, 'i', cmsgpack.pack({ ctx.idem_key, ctx.hash, code, ctx.first or '', ctx.idem_ttl,
      ctx.now, payload }))
    local rec = ctx.hash .. '\n' .. code .. '\n' .. (ctx.first or '') .. '\n' ..
      (ctx.last or '') .. '\n' .. payload
    redis.call('SET', ctx.idem_key, rec, 'PX', ctx.idem_ttl)
  end
  return { code, payload, 0, ctx.first or '', ctx.last or '' }
end

-- Every script starts here: ctx from the shared leading KEYS (stream, idempotency record) and
-- ARGV (actor, hash, ttl, idempotency key), or a reply to give at once (not ready, or a replay).
local function begin(keys, argv)
  if redis.call('EXISTS', keys[1]) == 0 then return nil, { C_NOT_READY, '', 0, '', '' } end
  local ctx = { stream = keys[1], idem_key = keys[2], actor = argv[1], hash = argv[2],
                idem_ttl = tonumber(argv[3]), idem = argv[4], now = now_ms(), indexed = {} }
  return ctx, idem_check(ctx.idem_key, ctx.hash)
end

-- Scripts that act on an existing reservation share one KEYS layout:
--   KEYS[1] stream, KEYS[2] idempotency record, KEYS[3] reservation hash, KEYS[4] expiry zset,
--   KEYS[5] location meta, KEYS[6] location sku index, KEYS[7..] positions of its lines, in order
-- and ARGV[1..4] as in begin(), ARGV[5] retention (ms) of a finished reservation.
local K_RES, K_EXP, K_LOC, K_INDEX, K_LINES = 3, 4, 5, 6, 7

-- The reservation document, or a reply to give instead (not found, or keys not matching its lines).
local function load_reservation(keys)
  local json = redis.call('HGET', keys[K_RES], 'doc')
  if not json then return nil, { C_NO_RESERVATION, '', 0, '', '' } end
  local doc = cjson.decode(json)
  if #keys - K_LINES + 1 ~= #doc.lines then return nil, { C_STALE, '', 0, '', '' } end
  return doc, nil
end

-- Ends an active reservation: each line gives back what it held, and `take[i]` units of line i
-- leave on hand (a sale). Commit, release and expiry all end here, so a reservation ends once.
-- `reason` (default: kind) is what the position events say, e.g. sourcing_undo.
local function settle(ctx, keys, doc, status, kind, take, retention, reason)
  local loc = load_loc(keys[K_LOC]) or { ss = 0, lt = 0 }
  for i, line in ipairs(doc.lines) do
    local held, taken = line[3], take[i] or 0
    if held > 0 then
      local key = keys[K_LINES + i - 1]
      local old = load_pos(key, loc)
      local new = { oh = old.oh - taken, r = math.max(0, old.r - held), ss = old.ss, own = old.own }
      save_pos(ctx, key, keys[K_INDEX], doc.location, line[1], loc, old, new,
        { kind = kind, reason = reason or kind, ref = doc.ref, rid = doc.id })
    end
    line[4] = taken
  end
  doc.status = status
  doc.finished_at = ctx.now
  local json = cjson.encode(doc)
  redis.call('HSET', keys[K_RES], 'doc', json, 'st', status)
  redis.call('ZREM', keys[K_EXP], doc.id)
  if retention > 0 then
    redis.call('PEXPIRE', keys[K_RES], retention)
  else
    redis.call('DEL', keys[K_RES])
  end
  emit_reservation(ctx, json, kind)
  return json
end

-- A reservation past its expiry is expired by whichever script touches it first.
local function expire_if_due(ctx, keys, doc, retention)
  if doc.status == 'active' and doc.expires_at <= ctx.now then
    settle(ctx, keys, doc, 'expired', 'expire', {}, retention)
  end
end

-- The hold of a new reservation (reserve.lua, and sourcing_hold.lua for a sourcing part): all
-- lines or none, or with h.partial as much of each line as there is (at least one unit overall).
-- With a channel each line is held against the channel's availability (the fence c:<channel> is
-- taken off on top of safety stock; shortages report that figure).
-- k: res (reservation hash), exp (expiry zset), loc (location meta), index (sku index), pos
--   (position keys, in line order). h: id, location, ttl (ms), channel, ref, partial, owner,
--   owner_role ('' for none), sourcing (nil for none), skus, qtys (distinct skus).
-- Returns the code and payload to reply with: C_OK + reservation json | C_SHORTAGE + json
--   [[sku, requested, available], ...] | C_NO_LOCATION + location.
local function hold_new(ctx, k, h)
  local loc = load_loc(k.loc, h.channel)
  if not loc then return C_NO_LOCATION, h.location end
  local n = #h.skus
  local olds, holds, short, total = {}, {}, {}, 0
  for i = 1, n do
    local qty = h.qtys[i]
    local old = load_pos(k.pos[i], loc)
    local a = avail_of(old.oh, old.r, old.ss, old.u, loc.fence)
    local hold = qty
    if a < qty then
      short[#short + 1] = { h.skus[i], qty, a }
      hold = a
    end
    olds[i], holds[i], total = old, hold, total + hold
  end
  if #short > 0 and (not h.partial or total == 0) then
    return C_SHORTAGE, cjson.encode(short)
  end
  local doc = { id = h.id, location = h.location, status = 'active', actor = ctx.actor,
                created_at = ctx.now, expires_at = ctx.now + h.ttl, lines = {} }
  if h.channel ~= '' then doc.channel = h.channel end
  if h.ref ~= '' then doc.ref = h.ref end
  if h.owner ~= '' then doc.owner = h.owner end
  if h.owner_role ~= '' then doc.owner_role = h.owner_role end
  if h.sourcing then doc.sourcing = h.sourcing end
  for i = 1, n do
    local sku, old, hold = h.skus[i], olds[i], holds[i]
    doc.lines[i] = { sku, h.qtys[i], hold, 0 }
    if hold > 0 then
      local new = { oh = old.oh, r = old.r + hold, ss = old.ss, own = old.own }
      save_pos(ctx, k.pos[i], k.index, h.location, sku, loc, old, new,
        { kind = 'reserve', reason = 'reserve', ref = doc.ref, rid = doc.id })
    end
  end
  local json = cjson.encode(doc)
  redis.call('HSET', k.res, 'doc', json, 'st', 'active')
  redis.call('ZADD', k.exp, doc.expires_at, doc.id)
  emit_reservation(ctx, json, 'reserve')
  return C_OK, json
end

-- Sourcing hold records (domain/sourcing_holds.py): a hash with doc (JSON) and st (status).
-- Loads one, or returns the reply to give when it does not exist.
local function load_hold(key)
  local json = redis.call('HGET', key, 'doc')
  if not json then return nil, { C_NO_HOLD, '', 0, '', '' } end
  return cjson.decode(json), nil
end

-- Writes a changed hold record and appends its `o` event (field k: what happened). A finished
-- record (held, failed, released) gets `expire_ms` to live; an unfinished one stays in the
-- pending set scored by its lease's end.
local function save_hold(ctx, key, pending, doc, kind, expire_ms)
  doc.updated_at = ctx.now
  -- cjson writes an empty list as {}: a record without parts (failed at once) leaves them out.
  if type(doc.parts) == 'table' and #doc.parts == 0 then doc.parts = nil end
  local json = cjson.encode(doc)
  redis.call('HSET', key, 'doc', json, 'st', doc.status)
  if doc.status == 'pending' or doc.status == 'compensating' then
    redis.call('ZADD', pending, doc.lease_until, doc.id)
    redis.call('PERSIST', key)
  else
    redis.call('ZREM', pending, doc.id)
    if expire_ms and expire_ms > 0 then redis.call('PEXPIRE', key, expire_ms) end
  end
  append(ctx, 'o', json, 'k', kind)
  return json
end
-- Supply scripts share one KEYS layout:
--   KEYS[1] stream, KEYS[2] idempotency record, KEYS[3] supply hash, KEYS[4] open supply set,
--   KEYS[5] location meta, KEYS[6] location sku index, then per line i (from 0):
--   KEYS[7+2i] position, KEYS[8+2i] its incoming schedule
-- and ARGV[1..4] as in begin(), ARGV[5] retention (ms) of a finished supply.
-- A supply document (domain/supply.py) is JSON: id, location, eta, status, kind, created_at,
-- updated_at, actor, lines [{sku, qty, received}], ref?. Each line's outstanding units are in its
-- position's `in` and, as member y:<id>:<outstanding> scored by eta, in its incoming schedule.
local KS_SUP, KS_OPEN, KS_LOC, KS_INDEX, KS_LINES = 3, 4, 5, 6, 7

local function outstanding_of(line)
  return math.max(0, line.qty - line.received)
end

-- A receipt of a supply or transfer document (its lines {sku, qty, received}): the units each
-- document line receives now. argv[6] '1' allows over-receipt; argv[7] '1' when request lines
-- follow as pairs from argv[8] (else everything outstanding). `not_in` is the code for a sku the
-- document does not have, `where` the location named in refusals, pos_key(i) line i's position.
-- Returns take (per document line) | nil, code, payload to refuse with (nothing was written).
local function plan_receipt(doc, argv, not_in, where, pos_key)
  local take, asked = {}, {} -- per document line: units received now, and the request line asking
  if argv[7] == '1' then
    local line_of = {}
    for i, line in ipairs(doc.lines) do line_of[line.sku] = i end
    local j = 0
    for a = 8, #argv, 2 do
      local sku, qty = argv[a], tonumber(argv[a + 1])
      local i = line_of[sku]
      if not i then return nil, not_in, cjson.encode({ j, sku }) end
      local out = outstanding_of(doc.lines[i])
      if argv[6] ~= '1' and qty > out then
        return nil, C_NOT_ENOUGH, cjson.encode({ j, where, sku, 'outstanding', qty, out })
      end
      take[i], asked[i] = qty, j
      j = j + 1
    end
  else
    for i, line in ipairs(doc.lines) do take[i], asked[i] = outstanding_of(line), i - 1 end
  end
  for i, qty in pairs(take) do
    local oh = (tonumber(redis.call('HGET', pos_key(i), 'oh')) or 0) + qty
    if over_cap(oh) then return nil, C_QUANTITY, cjson.encode({ asked[i], 'qty', oh }) end
  end
  return take
end

-- Incoming by ETA, for every kind of incoming (supply 'y'; transfers add theirs): a position's
-- schedule holds one member <kind>:<id>:<units outstanding> per open document line, scored by
-- its eta, and the position's `in` is their total.
local function incoming_member(kind, id, units)
  return kind .. ':' .. id .. ':' .. units
end

local function supply_member(id, units)
  return incoming_member('y', id, units)
end

-- A document line's outstanding units go from `before` to `after` (its schedule member and the
-- position's `in` follow) and `received` units arrive on hand; appends the position's event
-- (ev as save_pos's) unless nothing changes. pos = {key, schedule, index, loc_id, sku, loc}.
local function change_incoming(ctx, pos, kind, id, eta, before, after, received, ev)
  if before ~= after then
    if before > 0 then redis.call('ZREM', pos.schedule, incoming_member(kind, id, before)) end
    if after > 0 then redis.call('ZADD', pos.schedule, eta, incoming_member(kind, id, after)) end
  end
  if before == after and received == 0 then return end
  local old = load_pos(pos.key, pos.loc)
  local new = { oh = old.oh + received, r = old.r, ss = old.ss, own = old.own,
                inc = math.max(0, old.inc - before + after) }
  save_pos(ctx, pos.key, pos.index, pos.loc_id, pos.sku, pos.loc, old, new, ev)
end

-- The supply document, or a reply to give instead (not found, or keys not matching its lines).
local function load_supply(keys)
  local json = redis.call('HGET', keys[KS_SUP], 'doc')
  if not json then return nil, { C_NO_SUPPLY, '', 0, '', '' } end
  local doc = cjson.decode(json)
  if #keys - KS_LINES + 1 ~= 2 * #doc.lines then return nil, { C_STALE, '', 0, '', '' } end
  return doc, nil
end

-- Writes the supply document, keeps the open set, appends its event (field y, k = kind); a
-- finished supply is kept `retention` ms more (0: dropped at once; Postgres keeps it).
local function save_supply(ctx, keys, doc, kind, retention)
  doc.updated_at = ctx.now
  local json = cjson.encode(doc)
  redis.call('HSET', keys[KS_SUP], 'doc', json, 'st', doc.status)
  if doc.status == 'open' or doc.status == 'partially_received' then
    redis.call('SADD', keys[KS_OPEN], doc.id)
  else
    redis.call('SREM', keys[KS_OPEN], doc.id)
    if retention > 0 then
      redis.call('PEXPIRE', keys[KS_SUP], retention)
    else
      redis.call('DEL', keys[KS_SUP])
    end
  end
  append(ctx, 'y', json, 'k', kind)
  return json
end

-- Line i (from 1) of a supply: its outstanding units go from `before` to `after`, and
-- `received` units arrive on hand (change_incoming, event kind supply, ref the supply id).
local function supply_line_change(ctx, keys, doc, loc, i, before, after, received, reason)
  local pos = { key = keys[KS_LINES + 2 * (i - 1)], schedule = keys[KS_LINES + 2 * (i - 1) + 1],
                index = keys[KS_INDEX], loc_id = doc.location, sku = doc.lines[i].sku, loc = loc }
  change_incoming(ctx, pos, 'y', doc.id, doc.eta, before, after, received,
    { kind = 'supply', reason = reason, ref = doc.id })
end

-- Transfers (issue 13, domain/transfers.py): no such transfer (record or shadow); a finished
-- transfer (payload: its status); a record or shadow not in the state the step expects
-- (payload: its status); a sku that is not a line of the transfer.
local C_NO_TRANSFER, C_TRANSFER_DONE, C_TRANSFER_STATE, C_NOT_IN_TRANSFER = 60, 61, 62, 63
-- The record's scripts (the `from` partition) share one KEYS layout:
--   KEYS[1] stream, KEYS[2] idempotency record, KEYS[3] record hash, KEYS[4] pending zset,
--   and when units move at `from`: KEYS[5] location meta, KEYS[6] sku index, KEYS[7..] the
--   positions of its lines at `from`, in order.
-- The shadow's scripts (the `to` partition) share another:
--   KEYS[1] stream, KEYS[2] idempotency record, KEYS[3] shadow hash, KEYS[4] location meta,
--   KEYS[5] sku index, then per line i (from 0): KEYS[6+2i] position at `to`, KEYS[7+2i] its
--   incoming schedule.
local KT_REC, KT_PENDING, KT_LOC, KT_INDEX, KT_LINES = 3, 4, 5, 6, 7
local KT_SHADOW, KT_TO_LOC, KT_TO_INDEX, KT_TO_LINES = 3, 4, 5, 6
-- A cancelled shadow is a tombstone too: it must outlive any late arrival of its transfer.
local TRANSFER_TOMBSTONE_MS = 3600000

-- Writes a transfer document (record or shadow) and appends its event (field t, k = kind). The
-- record (with `pending`, the pending zset) stays in it while doc.pending; a finished document
-- is kept `retention` ms more (0: dropped at once, Postgres keeps it).
local function save_transfer(ctx, key, pending, doc, kind, retention)
  doc.updated_at = ctx.now
  local json = cjson.encode(doc)
  redis.call('HSET', key, 'doc', json, 'st', doc.status)
  if pending then
    if doc.pending then
      redis.call('ZADD', pending, doc.lease_until, doc.id)
    else
      redis.call('ZREM', pending, doc.id)
    end
  end
  if doc.status == 'cancelled' or doc.status == 'received' then
    if doc.side == 'to' and doc.status == 'cancelled' then
      retention = math.max(retention, TRANSFER_TOMBSTONE_MS)
    end
    if retention > 0 then
      redis.call('PEXPIRE', key, retention)
    else
      redis.call('DEL', key)
    end
  end
  append(ctx, 't', json, 'k', kind)
  return json
end

-- The transfer document at `key`, or a reply to give instead.
local function load_transfer(key)
  local json = redis.call('HGET', key, 'doc')
  if not json then return nil, { C_NO_TRANSFER, '', 0, '', '' } end
  return cjson.decode(json), nil
end

-- Line i (from 1) of a shadow: its outstanding units at `to` go from `before` to `after` and
-- `received` units arrive on hand there (change_incoming; kind transfer, ref the transfer id).
-- Without an eta the units are scheduled at +inf: incoming, but never due by a date.
local function transfer_line_change(ctx, keys, doc, loc, i, before, after, received, reason)
  local pos = { key = keys[KT_TO_LINES + 2 * (i - 1)],
                schedule = keys[KT_TO_LINES + 2 * (i - 1) + 1], index = keys[KT_TO_INDEX],
                loc_id = doc.to, sku = doc.lines[i].sku, loc = loc }
  change_incoming(ctx, pos, 't', doc.id, doc.eta or '+inf', before, after, received,
    { kind = 'transfer', reason = reason, ref = doc.id })
end

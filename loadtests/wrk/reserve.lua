-- reserve.lua: a flash sale for wrk. Every request POSTs /v1/reservations for RESERVE_QTY (default
-- 1) of one hot sku at one location; done() counts 201 (held) vs 409 (sold out) vs anything else.
-- Drives omnistock and the Postgres row-lock baseline (loadtests/baselines/pg_rowlock) alike.
--
--   RESERVE_LOCATION=chi-loop RESERVE_SKU=HOT-1 RESERVE_KEY=osk_... \
--     wrk -t2 -c200 -d10s -s loadtests/wrk/reserve.lua http://127.0.0.1:8000
--   wrk -t2 -c200 -d10s -s loadtests/wrk/reserve.lua http://127.0.0.1:8100 -- LOCATION SKU [KEY]
--
-- Environment (wrk arguments after `--` win): RESERVE_LOCATION, RESERVE_SKU, RESERVE_KEY (API key,
-- sent as a Bearer token when set), RESERVE_QTY, RESERVE_TTL (ttl_seconds, default: the server's),
-- RESERVE_IDEMPOTENCY=1 (a fresh Idempotency-Key on every request).
-- The last line printed is machine-readable:
--   reserve-summary {"created":N,"sold_out":N,"other":N,"requests":N,"errors":N,"seconds":S,
--                    "rps":R,"p50_ms":X,"p90_ms":X,"p99_ms":X,"max_ms":X}

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local function setting(args, index, name, default)
  local value = args[index] or os.getenv(name)
  if value == nil or value == "" then return default end
  return value
end

function init(args)
  local location = setting(args, 1, "RESERVE_LOCATION", nil)
  local sku = setting(args, 2, "RESERVE_SKU", nil)
  local key = setting(args, 3, "RESERVE_KEY", nil)
  if location == nil or sku == nil then
    io.stderr:write("reserve.lua: set RESERVE_LOCATION and RESERVE_SKU (or pass -- LOCATION SKU)\n")
    os.exit(2)
  end
  local qty = tonumber(os.getenv("RESERVE_QTY") or "1")
  local ttl = os.getenv("RESERVE_TTL")
  -- Identifiers are [A-Za-z0-9._:-] (nothing to escape in JSON).
  local body = string.format('{"location":"%s","lines":[{"sku":"%s","qty":%d}]', location, sku, qty)
  if ttl and ttl ~= "" then body = body .. string.format(',"ttl_seconds":%d', tonumber(ttl)) end
  body = body .. ',"channel":"web"}'
  wrk.method = "POST"
  wrk.path = "/v1/reservations"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  if key then wrk.headers["Authorization"] = "Bearer " .. key end
  idempotent = os.getenv("RESERVE_IDEMPOTENCY") == "1"
  created, sold_out, other, sent = 0, 0, 0, 0
  prebuilt = wrk.format()
end

function request()
  if not idempotent then return prebuilt end
  sent = sent + 1
  local headers = { ["Idempotency-Key"] = string.format("wrk-%d-%d-%d", os.time(), id, sent) }
  return wrk.format(nil, nil, headers)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  elseif status == 409 then
    sold_out = sold_out + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local c, s, o = 0, 0, 0
  for _, thread in ipairs(threads) do
    c = c + thread:get("created")
    s = s + thread:get("sold_out")
    o = o + thread:get("other")
  end
  local e = summary.errors  -- wrk counts every status >= 400 in e.status: not a socket error
  local errors = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format("reserve: %d held (201), %d sold out (409), %d other, %d socket errors\n",
    c, s, o, errors))
  io.write(string.format(
    'reserve-summary {"created":%d,"sold_out":%d,"other":%d,"requests":%d,"errors":%d,'
      .. '"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    c, s, o, summary.requests, errors, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end

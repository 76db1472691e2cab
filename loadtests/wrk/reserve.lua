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
-- RESERVE_IDEMPOTENCY=1 (a fresh Idempotency-Key on every request). RESERVE_LOCATION may list
-- several locations separated by commas: requests then go to each in turn (spread over shards);
-- RESERVE_SKU may list several skus separated by commas: one line of RESERVE_QTY each.
-- The last line printed is machine-readable (see common.lua):
--   reserve-summary {"statuses":{"201":N,"409":N},"requests":N,"errors":N,"seconds":S,"rps":R,
--                    "p50_ms":X,"p90_ms":X,"p99_ms":X,"max_ms":X}

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

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
  wrk.method = "POST"
  wrk.path = "/v1/reservations"
  wrk.headers["Content-Type"] = "application/json"
  authorize(key)
  idempotent = os.getenv("RESERVE_IDEMPOTENCY") == "1"
  sent = 0
  bodies, prebuilt = {}, {}
  for each in string.gmatch(location, "[^,]+") do
    -- Identifiers are [A-Za-z0-9._:-] (nothing to escape in JSON).
    local lines = {}
    for one in string.gmatch(sku, "[^,]+") do
      lines[#lines + 1] = string.format('{"sku":"%s","qty":%d}', one, qty)
    end
    local body = string.format('{"location":"%s","lines":[%s]', each, table.concat(lines, ","))
    if ttl and ttl ~= "" then body = body .. string.format(',"ttl_seconds":%d', tonumber(ttl)) end
    body = body .. ',"channel":"web"}'
    bodies[#bodies + 1] = body
    prebuilt[#prebuilt + 1] = wrk.format(nil, nil, nil, body)
  end
  turn = 0
end

function request()
  turn = turn % #prebuilt + 1
  if not idempotent then return prebuilt[turn] end
  sent = sent + 1
  local headers = { ["Idempotency-Key"] = string.format("wrk-%d-%d-%d", os.time(), id, sent) }
  return wrk.format(nil, nil, headers, bodies[turn])
end

function done(summary, latency, requests)
  local total = all_statuses()
  local held, sold_out = total[201] or 0, total[409] or 0
  io.write(string.format("reserve: %d held (201), %d sold out (409), %d other\n",
    held, sold_out, summary.requests - held - sold_out))
  summarize("reserve", summary, latency, total)
end

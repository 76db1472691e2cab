-- request.lua: one fixed request, as fast as wrk can send it; counts responses by status.
--
--   REQUEST_PATH=/v1/availability/SKU-1?location=chi-loop REQUEST_KEY=osk_... \
--     wrk -t1 -c64 -d10s -s loadtests/wrk/request.lua http://127.0.0.1:8000
--   REQUEST_METHOD=POST REQUEST_PATH=/v1/availability REQUEST_BODY_FILE=body.json REQUEST_KEY=... \
--     wrk -t1 -c64 -d10s -s loadtests/wrk/request.lua http://127.0.0.1:8000
--
-- Environment: REQUEST_PATH (default /healthz), REQUEST_METHOD (default GET), REQUEST_BODY_FILE
-- (sent as application/json), REQUEST_KEY (API key, sent as a Bearer token when set). REQUEST_PATH
-- may list several paths separated by spaces: requests then go to each in turn.
-- The last line printed is machine-readable (see common.lua):
--   request-summary {"statuses":{"200":N},"requests":N,"errors":N,"seconds":S,"rps":R,...}
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
  wrk.method = setting(args, nil, "REQUEST_METHOD", "GET")
  wrk.path = setting(args, nil, "REQUEST_PATH", "/healthz")
  local body_file = setting(args, nil, "REQUEST_BODY_FILE", nil)
  if body_file then
    local f = assert(io.open(body_file, "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.headers["Content-Type"] = "application/json"
  end
  authorize(setting(args, nil, "REQUEST_KEY", nil))
  prebuilt = {}
  for path in string.gmatch(wrk.path, "%S+") do prebuilt[#prebuilt + 1] = wrk.format(nil, path) end
  turn = 0
end

function request()
  turn = turn % #prebuilt + 1
  return prebuilt[turn]
end

function done(summary, latency, requests)
  local total = all_statuses()
  local ok = 0
  for status, n in pairs(total) do
    if status >= 200 and status < 300 then ok = ok + n end
  end
  io.write(string.format("request: %d responses, %d 2xx\n", summary.requests, ok))
  summarize("request", summary, latency, total)
end

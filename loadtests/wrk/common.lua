-- common.lua: what every omnistock wrk script shares. Loaded with
--   dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
-- It registers the threads, counts responses by status in each thread and, in done(), prints a
-- human line and a machine-readable one: NAME-summary {"statuses":{"201":N,...},"requests":N,
-- "errors":N,"seconds":S,"rps":R,"p50_ms":X,"p90_ms":X,"p99_ms":X,"max_ms":X} where `errors`
-- are socket errors (connect, read, write, timeout) and statuses cover every response.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- Per thread: responses by status code.
statuses = {}

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

-- The setting from wrk's arguments after `--` (position index), else the environment, else default.
function setting(args, index, name, default)
  local value = (index and args[index]) or os.getenv(name)
  if value == nil or value == "" then return default end
  return value
end

-- Sets wrk.headers' Authorization from the key, when there is one.
function authorize(key)
  if key then wrk.headers["Authorization"] = "Bearer " .. key end
end

-- Responses of all threads by status.
function all_statuses()
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  return total
end

-- Prints the NAME-summary line (see the header) for done().
function summarize(name, summary, latency, total)
  local e = summary.errors  -- wrk counts every status >= 400 in e.status: not a socket error
  local errors = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  local parts = {}
  for status, n in pairs(total) do parts[#parts + 1] = string.format('"%d":%d', status, n) end
  io.write(string.format(
    '%s-summary {"statuses":{%s},"requests":%d,"errors":%d,"seconds":%.3f,"rps":%.1f,'
      .. '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    name, table.concat(parts, ","), summary.requests, errors, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end

-- ratelimit.lua: take up to ARGV[4] requests from an API key's rate limit (GCRA: the bucket is
-- kept as one number, the key's theoretical arrival time "tat"; a request passes when
-- tat + interval lies no further than one window ahead of now). All instances share the key, so
-- the limit holds across them; the key expires once the bucket is full again.
-- KEYS[1] the key's tat in us (keys.rate_limit)
-- ARGV[1] emission interval in us (window / quota); ARGV[2] the window in us (a full bucket);
-- ARGV[3] now in us, or '' for the Redis clock (tests pass it to be exact);
-- ARGV[4] how many requests to take at most (an instance's local lease; absent: 1)
-- Returns {C_OK, taken, remaining, reset us, 0} | {C_LIMITED, 0, 0, reset us, retry us}:
--   remaining is what would still pass now, reset when the bucket is full again, retry when one
--   request would pass.
local interval, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local want = tonumber(ARGV[4]) or 1
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
-- Never more than a window ahead: a policy made looser takes effect at once (kept, so that the
-- refusals below do not find the old, further time again).
if tat > now + window then
  tat = now + window
  redis.call('SET', KEYS[1], string.format('%d', tat),
    'PX', string.format('%d', math.ceil(window / 1000) + 1))
end
local room = math.floor((now + window - tat) / interval)
if room < 1 then
  return {C_LIMITED, 0, 0, tat - now, tat + interval - window - now}
end
local taken = math.min(want, room)
local new_tat = tat + taken * interval
-- %d: tostring would print a 16-digit time in exponent form and lose microseconds.
redis.call('SET', KEYS[1], string.format('%d', new_tat),
  'PX', string.format('%d', math.ceil((new_tat - now) / 1000) + 1))
return {C_OK, taken, room - taken, new_tat - now, 0}

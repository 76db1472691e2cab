-- available.lua: units available (before any channel fence) at many positions of one partition,
-- read-only: a sourcing plan's candidate reads, one call per partition instead of one HMGET per
-- position (the plan of 5 lines over 100 locations reads 500).
-- KEYS[1..n] positions, all of one partition
-- ARGV[i] the safety stock of KEYS[i]'s location (what applies when the position has none of its own)
-- Returns {available_1, ..., available_n}: avail_of(oh, r, ss, u) of each (0 for a missing position).
local out = {}
for i = 1, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'oh', 'r', 'ss', 'u')
  out[i] = avail_of(tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]) or tonumber(ARGV[i]),
    tonumber(f[4]) or 0)
end
return out

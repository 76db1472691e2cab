-- trim.lua: drop a partition stream's entries below ARGV[1] (all persisted: the caller checked)
-- and record the greatest one dropped as the stream's max-deleted-entry-id, so a reader resuming
-- from an older position knows it missed entries (XTRIM alone does not record it).
-- KEYS[1] stream; ARGV[1] min id to keep
-- Returns {C_OK, number of entries dropped, 0, '', ''}
-- The forward probe first: XREVRANGE ending below a stream's first entry walks the whole stream
-- (Valkey 8.1: 36 ms over 300k entries, every trimmer tick, stalling every client).
if #redis.call('XRANGE', KEYS[1], '-', '(' .. ARGV[1], 'COUNT', 1) == 0 then
  return { C_OK, 0, 0, '', '' }
end
local below = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[1], '-', 'COUNT', 1)
local dropped = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
redis.call('XSETID', KEYS[1], last, 'MAXDELETEDID', below[1][1])
return { C_OK, dropped, 0, '', '' }

-- worker_report.lua: publish one worker process's loop health (redis/workers.py), timed by the
-- Redis clock, and drop index entries of workers silent for longer than the TTL.
-- KEYS[1] the worker's report hash (keys.worker_report), KEYS[2] the index (keys.WORKERS)
-- ARGV[1] worker id, ARGV[2] TTL ms, ARGV[3] pid, ARGV[4] failing loops (JSON object
--   name -> error), ARGV[5] restarts (JSON object name -> count)
-- Returns {C_OK, report time (ms, Redis clock), 0, '', ''}
local now = now_ms()
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'pid', ARGV[3], 'at', now, 'failing', ARGV[4], 'restarts', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
return { C_OK, now, 0, '', '' }

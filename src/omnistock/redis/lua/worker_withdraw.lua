-- worker_withdraw.lua: remove a stopping worker's report (redis/workers.py), so serving processes
-- stop counting it at once instead of after its TTL.
-- KEYS[1] the worker's report hash (keys.worker_report), KEYS[2] the index (keys.WORKERS)
-- ARGV[1] worker id
-- Returns {C_OK, '', 0, '', ''}
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return { C_OK, '', 0, '', '' }

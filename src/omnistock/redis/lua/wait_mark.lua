-- wait_mark.lua: one small write on the caller's connection, so that the WAIT which follows it
-- there covers every write the primary had before (WAIT waits for the offset of the connection's
-- own last write; a replayed reply writes nothing). OMNISTOCK_REDIS_WAIT_REPLICAS only.
-- KEYS[1] the partition's wait mark (keys.wait_mark); no ARGV
-- Returns {C_OK, '', 0, '', ''}
redis.call('SET', KEYS[1], '1', 'PX', 60000)
return { C_OK, '', 0, '', '' }

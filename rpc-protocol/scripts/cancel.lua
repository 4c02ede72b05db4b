-- cancel.lua: cancels one call of a service. The call id is added to the
-- service's cancelled set (workers skip the call if it is queued and stop
-- it if it is running); a call waiting on the schedule is moved onto the
-- jobs stream at once with the field `c` = 1, so the worker that takes it
-- answers its caller `cancelled` without running it.
--
-- KEYS[1]  the schedule (sorted set of tokens by due time)
-- KEYS[2]  the scheduled messages (hash of token -> job message)
-- KEYS[3]  the jobs stream
-- KEYS[4]  the cancelled calls (sorted set of call id -> when cancelled, ms)
-- ARGV[1]  the call id (a scheduled call's token is its call id)
-- ARGV[2]  how long cancellations are remembered, in ms
--
-- Returns 1 when the call was on the schedule, else 0.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[4], now_ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now_ms - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[4], ARGV[2])
local message = redis.call('HGET', KEYS[2], ARGV[1])
if message then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('XADD', KEYS[3], '*', 'm', message, 'c', '1')
  return 1
end
return 0

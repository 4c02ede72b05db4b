-- move_due.lua: moves the service's scheduled jobs that are due onto its
-- jobs stream. The script runs atomically, so of many workers racing to
-- move the same jobs each job moves exactly once; "due" is judged on
-- Redis's own clock (TIME), never on a worker's.
--
-- KEYS[1]  the schedule: a sorted set of entry tokens scored by the time
--          they are due, in ms since the Unix epoch
-- KEYS[2]  the scheduled messages: a hash of entry token -> job message
-- KEYS[3]  the jobs stream
-- ARGV[1]  the most jobs to move in one call
--
-- Returns the number of jobs moved. A token whose message is missing (a
-- cancellation removed it) is dropped from the schedule without a move.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
local moved = 0
for _, token in ipairs(due) do
  local message = redis.call('HGET', KEYS[2], token)
  if message then
    redis.call('XADD', KEYS[3], '*', 'm', message)
    moved = moved + 1
  end
  redis.call('ZREM', KEYS[1], token)
  redis.call('HDEL', KEYS[2], token)
end
return moved

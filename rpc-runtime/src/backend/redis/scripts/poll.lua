-- poll.lua: a worker's regular look at one service's lifecycle state, in
-- one atomic step on one slot: moves the scheduled jobs that are due onto
-- the jobs stream (of many workers racing, each job moves exactly once;
-- "due" is judged on Redis's own clock, never on a worker's), and reports
-- the next due time, whether the service is paused, and the calls
-- cancelled since the worker last looked.
--
-- KEYS[1]  the schedule: a sorted set of entry tokens scored by the time
--          they are due, in ms since the Unix epoch
-- KEYS[2]  the scheduled messages: a hash of entry token -> job message
-- KEYS[3]  the jobs stream
-- KEYS[4]  the cancelled calls: a sorted set of call id -> when cancelled (ms)
-- KEYS[5]  the pause flag (a string; it exists while the service is paused)
-- ARGV[1]  the most jobs to move in one call
-- ARGV[2]  report cancellations scored above this (ms)
-- ARGV[3]  the most cancellations to report in one call
--
-- Returns {now_ms, moved, next_due_ms or -1, paused (0/1), {id, ms, ...},
-- errors}. A token whose message is missing (a cancellation moved it) is
-- dropped from the schedule without a move. A key of the wrong type does
-- not stop the rest: its part is skipped and its error is in `errors`.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local errors = {}
local moved = 0
local next_due = -1
local due = redis.pcall('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
if due.err then
  table.insert(errors, 'schedule: ' .. due.err)
else
  for _, token in ipairs(due) do
    local message = redis.pcall('HGET', KEYS[2], token)
    if type(message) == 'string' then
      local added = redis.pcall('XADD', KEYS[3], '*', 'm', message)
      if type(added) == 'table' and added.err then
        -- Left on the schedule: moved on a later look.
        table.insert(errors, 'queue: ' .. added.err)
        break
      end
      moved = moved + 1
    end
    redis.call('ZREM', KEYS[1], token)
    redis.pcall('HDEL', KEYS[2], token)
  end
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if first[2] then next_due = math.floor(tonumber(first[2])) end
end
local cancelled = redis.pcall('ZRANGEBYSCORE', KEYS[4], '(' .. ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
if cancelled.err then
  table.insert(errors, 'cancelled: ' .. cancelled.err)
  cancelled = {}
end
local paused = redis.call('EXISTS', KEYS[5])
return {now_ms, moved, next_due, paused, cancelled, errors}

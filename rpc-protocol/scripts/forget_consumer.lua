-- forget_consumer.lua: forgets one consumer of a jobs stream's group
-- (XGROUP DELCONSUMER) only if, at that very moment, it holds no lease and
-- has not tried to read for at least the given time. A janitor lists the
-- consumers first and picks the idle ones; checking again in one atomic
-- step closes the window in which a worker that came back reads a job
-- between the listing and the delete: DELCONSUMER would drop that lease,
-- and the job would never be redelivered.
--
-- KEYS[1]  the jobs stream
-- ARGV[1]  the consumer group
-- ARGV[2]  the consumer
-- ARGV[3]  the least idle time, ms
--
-- Returns 1 when the consumer was forgotten, 0 when it was kept (or there
-- is no such consumer or group).
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) == 'table' and consumers.err then
  return 0
end
local least = tonumber(ARGV[3])
if not least then
  return 0
end
for _, c in ipairs(consumers) do
  local name, pending, idle = nil, nil, nil
  for f = 1, #c - 1, 2 do
    if c[f] == 'name' then name = c[f + 1]
    elseif c[f] == 'pending' then pending = c[f + 1]
    elseif c[f] == 'idle' then idle = c[f + 1] end
  end
  if name == ARGV[2] then
    if pending == 0 and idle and idle >= least then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
      return 1
    end
    return 0
  end
end
return 0

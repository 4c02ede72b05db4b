-- rate_limit.lua: whether one call may start now under its rate limits
-- (the job's, the service's, or both), every worker of the fleet sharing
-- their state. Each limit is a GCRA: its hash keeps `tat`, the time (µs,
-- broker clock) the next start is due at the steady rate. A start is
-- allowed at `now` when `now >= tat - tolerance`, and moves `tat` to
-- `max(tat, now) + interval`.
--
-- A call over a limit is given a turn: the first time every limit allows
-- it. Its turn is kept in KEYS[1] under its call id, and every limit's
-- `tat` moves past it, so the calls that wait are spread one interval
-- apart instead of all coming back at once. A call that comes back with
-- its turn due starts without asking again. A call whose turn would come
-- after ARGV[2] (its deadline) is not given one.
--
-- State that is not what this script writes (a key of another type, a
-- `tat` that is not a number) is replaced, never trusted: garbage costs at
-- most one burst, and never stops a worker.
--
-- KEYS[1]   the turns (sorted set of call id -> µs), of the first limit
-- KEYS[2..] each limit's state (hash: tat, rate, allowed, waited, second,
--           this_second, last_second)
-- ARGV[1]   the call id
-- ARGV[2]   the longest the call may wait for its turn, µs
-- ARGV[3..] per limit, in KEYS order, three values: interval µs,
--           tolerance µs, the limit as written (for operators)
--
-- Returns {0, 0}: start now; {1, µs}: come back in µs (a turn given now,
-- or one not due yet); {2, µs}: the first turn is µs away, after the
-- longest wait: none was given.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local second = tonumber(t[1])
local turns = KEYS[1]
local kind = redis.call('TYPE', turns).ok
if kind ~= 'zset' and kind ~= 'none' then
  redis.call('DEL', turns)
end
for i = 2, #KEYS do
  kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'hash' and kind ~= 'none' then
    redis.call('DEL', KEYS[i])
  end
end

-- Adds one to a count (not HINCRBY: a count that is no number starts again).
local function count(key, field)
  local n = tonumber(redis.call('HGET', key, field)) or 0
  redis.call('HSET', key, field, n + 1)
end

-- A start, counted for the operators: in all, and per second.
local function started()
  for i = 2, #KEYS do
    local counts = redis.call('HMGET', KEYS[i], 'second', 'this_second')
    local at, n = tonumber(counts[1]), tonumber(counts[2]) or 0
    if at == second then
      redis.call('HSET', KEYS[i], 'this_second', n + 1)
    else
      local last = 0
      if at == second - 1 then last = n end
      redis.call('HSET', KEYS[i], 'second', second, 'this_second', 1, 'last_second', last)
    end
    count(KEYS[i], 'allowed')
  end
end

local turn = redis.call('ZSCORE', turns, ARGV[1])
if turn then
  turn = tonumber(turn)
  if turn <= now then
    redis.call('ZREM', turns, ARGV[1])
    started()
    return {0, 0}
  end
  return {1, turn - now}
end
-- Turns given an hour ago or more were never taken up (their calls were
-- cancelled or went elsewhere).
redis.call('ZREMRANGEBYSCORE', turns, '-inf', now - 3600000000)

local at = now
local tats = {}
for i = 2, #KEYS do
  local j = 3 + (i - 2) * 3
  local tat = tonumber(redis.call('HGET', KEYS[i], 'tat')) or now
  if tat < now then tat = now end
  tats[i] = tat
  local allowed_at = tat - tonumber(ARGV[j + 1])
  if allowed_at > at then at = allowed_at end
end
if at - now > tonumber(ARGV[2]) then
  return {2, at - now}
end
for i = 2, #KEYS do
  local j = 3 + (i - 2) * 3
  local tat = tats[i]
  if at > tat then tat = at end
  redis.call('HSET', KEYS[i], 'tat', string.format('%d', tat + tonumber(ARGV[j])), 'rate', ARGV[j + 2])
end
if at <= now then
  started()
  return {0, 0}
end
redis.call('ZADD', turns, string.format('%d', at), ARGV[1])
for i = 2, #KEYS do
  count(KEYS[i], 'waited')
end
return {1, at - now}

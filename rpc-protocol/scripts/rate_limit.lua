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

-- Each limit's state, read once: tat, second, this_second, last_second,
-- allowed, waited (a field that is no number reads as none).
local state = {}
for i = 2, #KEYS do
  kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'hash' and kind ~= 'none' then
    redis.call('DEL', KEYS[i])
  end
  local f = redis.call('HMGET', KEYS[i], 'tat', 'second', 'this_second', 'last_second', 'allowed', 'waited')
  local s = {}
  for k = 1, 6 do s[k] = tonumber(f[k]) end
  state[i] = s
end

-- A start, counted for the operators: in all, and per second.
local function started(s)
  local n = s[3] or 0
  if s[2] == second then
    s[3] = n + 1
  else
    if s[2] == second - 1 then s[4] = n else s[4] = 0 end
    s[2] = second
    s[3] = 1
  end
  s[5] = (s[5] or 0) + 1
end

-- Each limit's state, written once.
local function write(i, rate)
  local s = state[i]
  local fields = {'second', s[2] or second, 'this_second', s[3] or 0,
    'last_second', s[4] or 0, 'allowed', s[5] or 0, 'waited', s[6] or 0}
  if s[1] then
    fields[#fields + 1] = 'tat'
    fields[#fields + 1] = string.format('%d', s[1])
  end
  if rate then
    fields[#fields + 1] = 'rate'
    fields[#fields + 1] = rate
  end
  redis.call('HSET', KEYS[i], unpack(fields))
end

local turn = redis.call('ZSCORE', turns, ARGV[1])
if turn then
  turn = tonumber(turn)
  if turn <= now then
    redis.call('ZREM', turns, ARGV[1])
    for i = 2, #KEYS do
      started(state[i])
      write(i, nil)
    end
    return {0, 0}
  end
  return {1, turn - now}
end

local at = now
for i = 2, #KEYS do
  local j = 3 + (i - 2) * 3
  local tat = state[i][1] or now
  if tat < now then tat = now end
  state[i][1] = tat
  local allowed_at = tat - tonumber(ARGV[j + 1])
  if allowed_at > at then at = allowed_at end
end
if at - now > tonumber(ARGV[2]) then
  return {2, at - now}
end
for i = 2, #KEYS do
  local j = 3 + (i - 2) * 3
  local s = state[i]
  if at > s[1] then s[1] = at end
  s[1] = s[1] + tonumber(ARGV[j])
  if at <= now then
    started(s)
  else
    s[6] = (s[6] or 0) + 1
  end
  write(i, ARGV[j + 2])
end
if at <= now then
  return {0, 0}
end
-- Turns given an hour ago or more were never taken up (their calls were
-- cancelled or went elsewhere).
redis.call('ZREMRANGEBYSCORE', turns, '-inf', now - 3600000000)
redis.call('ZADD', turns, string.format('%d', at), ARGV[1])
return {1, at - now}

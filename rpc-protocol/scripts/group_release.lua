-- group_release.lua: gives back a call's slot of its group key and moves
-- the key's oldest waiting messages back onto the stream while slots are
-- free (PROTOCOL.md, "Per-key concurrency"). A worker runs it when a keyed
-- job ends (answered, failed, dead-lettered, cancelled, retried onto the
-- schedule, handed back), and its lifecycle poll runs it with no call id for
-- the groups in the queue's set of groups with waiting messages, so slots
-- whose holder died (lapsed) are handed on without any completion.
--
-- Each moved message reserves its slot (its call id added to the running
-- set, lapsing after the slot lease), so the worker that takes it from the
-- stream finds it admitted; a key never has more than its limit of messages
-- in the stream and running together, so the stream interleaves keys: a key
-- with ten thousand waiting messages and a key with ten share the workers.
--
-- Keys of another type than this script writes are deleted (see
-- group_admit.lua). A waiting element that is not a job message is moved
-- like any other and dead-lettered by the worker that takes it.
--
-- KEYS[1]  the key's running set (sorted set: call id -> slot lapses, ms)
-- KEYS[2]  the key's waiting list (job messages, oldest first)
-- KEYS[3]  the queue's set of groups with waiting messages
-- KEYS[4]  the jobs stream
-- ARGV[1]  the call id whose slot is given back, or '' (a sweep)
-- ARGV[2]  the job's per-key limit (1 to 10000) as this worker knows it
-- ARGV[3]  the slot lease, in ms (the workers' visibility timeout)
-- ARGV[4]  this group's member of KEYS[3]: `<job>:<key>`
--
-- Returns {moved, reset}: the messages moved onto the stream, and how many
-- keys of the wrong type were deleted.
local limit = math.max(1, math.min(10000, tonumber(ARGV[2]) or 1))
local lease = math.max(1, tonumber(ARGV[3]) or 30000)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local reset = 0
for i, want in ipairs({'zset', 'list', 'set'}) do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'none' and kind ~= want then
    redis.call('DEL', KEYS[i])
    reset = reset + 1
  end
end

-- The lane a message goes onto (docs/PROTOCOL.md, "Priorities"): the
-- stream of its `priority` (`<jobs>:<p>`, the queue's own for 3 or none),
-- decoded only when its text names one. `jobs` is any lane of the queue.
local function lane_of(jobs, message)
  local base = string.gsub(jobs, ':jobs:%d$', ':jobs')
  if not string.find(message, '"priority"', 1, true) or #message > 1048576 then return base end
  local ok, decoded = pcall(cjson.decode, message)
  if not ok or type(decoded) ~= 'table' then return base end
  local p = decoded.priority
  if p == 1 or p == 2 or p == 4 or p == 5 then return base .. ':' .. p end
  return base
end

local function call_id(m)
  local id = string.match(m, '^{"v":%d+,"id":"([^"\\]*)"')
  if id then return id end
  if #m > 65536 then return nil end
  local ok, message = pcall(cjson.decode, m)
  if ok and type(message) == 'table' and type(message.id) == 'string' then
    return message.id
  end
  return nil
end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] ~= '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
local moved = 0
while moved < limit and redis.call('ZCARD', KEYS[1]) < limit do
  local m = redis.call('LPOP', KEYS[2])
  if not m then break end
  redis.call('XADD', lane_of(KEYS[4], m), '*', 'm', m)
  local id = call_id(m)
  if id then redis.call('ZADD', KEYS[1], now + lease, id) end
  moved = moved + 1
end
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[4])
end
return {moved, reset}

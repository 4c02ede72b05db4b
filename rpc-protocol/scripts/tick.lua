-- tick.lua: offers one tick of a periodic job. Every worker that runs the
-- job offers every tick; the script runs atomically, so the tick is added
-- to the jobs stream by exactly one of them: the first whose tick is newer
-- than the last one recorded. "Newer" is judged against the record, never
-- a worker's clock, and a tick in the future of Redis's own clock (TIME) is
-- refused, so no worker whose clock runs ahead enqueues ticks early.
--
-- KEYS[1]  the definitions: a hash of periodic job name -> definition JSON
-- KEYS[2]  the last ticks: a hash of periodic job name -> last tick
--          enqueued, in ms since the Unix epoch (1 to 15 decimal digits)
-- KEYS[3]  the service's jobs stream
-- ARGV[1]  the periodic job's name
-- ARGV[2]  the tick, in ms since the Unix epoch (1 to 15 decimal digits)
-- ARGV[3]  the mode: `on_time` (enqueue unless done), `catch_up` (the same,
--          but only for a job with a recorded last tick; otherwise store
--          the definition only) or `register` (store the definition only)
-- ARGV[4]  the job message (its id is `periodic:<name>:<tick>`)
-- ARGV[5]  the definition JSON
--
-- Returns {outcome, now_ms, previous}: outcome is `enqueued`, `done` (that
-- tick or a later one was enqueued already), `registered` or `early` (the
-- tick is after now_ms); now_ms is Redis's clock; previous is the last tick
-- recorded before the call as stored ('' if none). A recorded value that is
-- not 1 to 15 digits, or lies more than an hour in Redis's future (no tick
-- is recorded before it is due, so that is garbage, and it would stop the
-- job for good), counts as none and is replaced by the next enqueue.
--
-- Every key is checked before anything is written, so a key of the wrong
-- type refuses the whole call rather than leaving half of it done (a job
-- enqueued without its record would run again).
local wanted = {'hash', 'hash', 'stream'}
for i = 1, 3 do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= wanted[i] and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a ' .. wanted[i])
  end
end
local function digits(value)
  if value and #value >= 1 and #value <= 15 and string.match(value, '^%d+$') then
    return tonumber(value)
  end
  return nil
end
local name, mode = ARGV[1], ARGV[3]
local tick = digits(ARGV[2])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local previous = redis.call('HGET', KEYS[2], name)
local last = digits(previous)
if last ~= nil and last > now_ms + 3600000 then last = nil end
previous = previous or ''
if mode == 'register' then
  redis.call('HSET', KEYS[1], name, ARGV[5])
  return {'registered', now_ms, previous}
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

if tick == nil or (mode ~= 'on_time' and mode ~= 'catch_up') then
  return redis.error_reply('ERR tick.lua: a tick is a number and the mode on_time, catch_up or register')
end
if tick > now_ms then
  return {'early', now_ms, previous}
end
if last ~= nil and last >= tick then
  return {'done', now_ms, previous}
end
if mode == 'catch_up' and last == nil then
  redis.call('HSET', KEYS[1], name, ARGV[5])
  return {'registered', now_ms, previous}
end
redis.call('HSET', KEYS[2], name, ARGV[2])
redis.call('HSET', KEYS[1], name, ARGV[5])
redis.call('XADD', lane_of(KEYS[3], ARGV[4]), '*', 'm', ARGV[4])
return {'enqueued', now_ms, previous}

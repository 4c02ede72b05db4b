-- poll.lua: a worker's regular look at one service's lifecycle state, in
-- one atomic step on one slot: moves the scheduled jobs that are due onto
-- the jobs stream (of many workers racing, each job moves exactly once;
-- "due" is judged on Redis's own clock, never on a worker's), and reports
-- the next due time, whether the service is paused, and the calls
-- cancelled since the worker last looked.
--
-- Nothing in these keys is trusted to be well formed: an entry due beyond
-- the horizon (an absurd or infinite score) would never run, and a
-- scheduled message without a due time would never move, so both are
-- dead-lettered with the reason instead; a cancellation scored in the
-- future (which would hide later ones from a reader's `since`) is removed.
--
-- KEYS[1]  the schedule: a sorted set of entry tokens scored by the time
--          they are due, in ms since the Unix epoch
-- KEYS[2]  the scheduled messages: a hash of entry token -> job message
-- KEYS[3]  the jobs stream
-- KEYS[4]  the cancelled calls: a sorted set of call id -> when cancelled (ms)
-- KEYS[5]  the pause flag (a string; it exists while the service is paused)
-- KEYS[6]  the dead-letter stream
-- ARGV[1]  the most jobs to move in one call
-- ARGV[2]  report cancellations scored above this (ms; exclusive)
-- ARGV[3]  the most cancellations to report in one call
-- ARGV[4]  the horizon: entries due more than this many ms after now are
--          dead-lettered
-- ARGV[5]  the dead-letter stream's approximate cap
-- ARGV[6]  '' or an HSCAN cursor of the scheduled messages: look at up to
--          100 of them for messages without a due time (a sweep, run
--          now and then, resumed from the cursor it returns)
--
-- Returns {now_ms, moved, next_due_ms or -1, paused (0/1), {id, ms, ...},
-- errors, dead_lettered, cursor, lanes}: the cancellations scored in (ARGV[2], now_ms],
-- oldest first; `errors` the parts Redis refused (a key of the wrong type
-- skips its part and never stops the rest); `cursor` the sweep's next
-- cursor ('0' when it went round, '' when no sweep was asked for); `lanes`
-- which of the queue's priority lanes other than the default exist as
-- streams (bit
-- p-1 for lane p: 1, 2, 8, 16).
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local horizon = now_ms + (tonumber(ARGV[4]) or 0)
local cap = tonumber(ARGV[5]) or 10000
local errors = {}
local moved, dead = 0, 0
local next_due = -1

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

local function dead_letter(token, message, reason)
  local added = redis.pcall('XADD', KEYS[6], 'MAXLEN', '~', cap, '*', 'reason', reason, 'm', message)
  if type(added) == 'table' and added.err then
    table.insert(errors, 'dead letters: ' .. added.err)
    return false
  end
  dead = dead + 1
  return true
end

local due = redis.pcall('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
if due.err then
  table.insert(errors, 'schedule: ' .. due.err)
else
  for _, token in ipairs(due) do
    local message = redis.pcall('HGET', KEYS[2], token)
    if type(message) == 'string' then
      local added = redis.pcall('XADD', lane_of(KEYS[3], message), '*', 'm', message)
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
  -- Entries due beyond the horizon never would run: out, with the reason.
  local far = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. horizon, '+inf', 'WITHSCORES', 'LIMIT', 0, 100)
  for i = 1, #far, 2 do
    local token = far[i]
    local message = redis.pcall('HGET', KEYS[2], token)
    if type(message) ~= 'string' then message = '' end
    if dead_letter(token, message, 'scheduled to run at ' .. far[i + 1] .. ' ms, beyond the horizon of ' .. horizon .. ' ms (now + ' .. ARGV[4] .. ' ms): it would never run') then
      redis.call('ZREM', KEYS[1], token)
      redis.pcall('HDEL', KEYS[2], token)
    end
  end
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if first[2] then next_due = math.floor(tonumber(first[2])) end
end

local cursor = ''
if ARGV[6] ~= '' then
  local page = redis.pcall('HSCAN', KEYS[2], ARGV[6], 'COUNT', 100)
  if page.err then
    table.insert(errors, 'scheduled messages: ' .. page.err)
  else
    cursor = page[1]
    local fields = page[2]
    for i = 1, #fields, 2 do
      local token = fields[i]
      if not redis.call('ZSCORE', KEYS[1], token) then
        if dead_letter(token, fields[i + 1], 'a scheduled message without a due time (token ' .. token .. '): it would never run') then
          redis.call('HDEL', KEYS[2], token)
        end
      end
    end
  end
end

-- Cancellations are scored with Redis's TIME when made: one in the future
-- is garbage, and would hide every later one from a reader's `since`.
local cancelled = redis.pcall('ZRANGEBYSCORE', KEYS[4], '(' .. ARGV[2], now_ms, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
if cancelled.err then
  table.insert(errors, 'cancelled: ' .. cancelled.err)
  cancelled = {}
else
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '(' .. (now_ms + 60000), '+inf')
end
local paused = redis.call('EXISTS', KEYS[5])
-- The queue's lanes other than the default that exist as streams (bit p-1
-- for lane p, docs/PROTOCOL.md, "Priorities"): a worker reads them from
-- now on. A lane key of another type is garbage, never reported.
local lanes = 0
for p, bit in pairs({[1] = 1, [2] = 2, [4] = 8, [5] = 16}) do
  if redis.call('TYPE', KEYS[3] .. ':' .. p).ok == 'stream' then lanes = lanes + bit end
end
return {now_ms, moved, next_due, paused, cancelled, errors, dead, cursor, lanes}

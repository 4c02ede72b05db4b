-- group_admit.lua: the per-key concurrency step of a worker, run before the
-- handler of a job message that carries a `group` key (PROTOCOL.md,
-- "Per-key concurrency"). At most `limit` calls of one job and key hold a
-- slot at once; a call that finds none free is parked: taken off the stream
-- (XACK + XDEL of its entry) and appended to the key's waiting list, in the
-- same step, so it is never both parked and leased. A slot is a member of
-- the running set scored by when it lapses on Redis's clock: a worker that
-- dies holding one loses it after the slot lease, with no one to release it.
--
-- A call already in the running set keeps its slot (a redelivery after its
-- worker died, a message this very script moved back from the waiting list,
-- which reserved its slot as it moved it) and its lease is renewed. A call
-- that finds a free slot but older messages of its key still waiting is
-- parked behind them, and the oldest move instead: first come, first run
-- within a key.
--
-- A parked call also parks, behind it, the next calls of its job and key
-- that no worker has been handed yet (among the next AHEAD entries after
-- the consumer group's last delivered id): a flood of one key's calls is
-- parked a hundred at a time, not one per delivery, so another key's calls
-- sent right behind it reach the workers within a few steps.
--
-- Keys of another type than this script writes (written by hand, or by a
-- bug) are deleted, never obeyed: a garbage key must not stop the workers;
-- how many were reset is returned, for the worker's log.
--
-- KEYS[1]  the key's running set (sorted set: call id -> slot lapses, ms)
-- KEYS[2]  the key's waiting list (job messages, oldest first)
-- KEYS[3]  the queue's set of groups with waiting messages
-- KEYS[4]  the jobs stream the message was delivered from
-- ARGV[1]  the call id
-- ARGV[2]  the job's per-key limit (1 to 10000) as this worker knows it
-- ARGV[3]  the slot lease, in ms (the workers' visibility timeout)
-- ARGV[4]  the consumer group of the stream
-- ARGV[5]  the stream entry id of this delivery
-- ARGV[6]  the job message, exactly as delivered
-- ARGV[7]  this group's member of KEYS[3]: `<job>:<key>`
--
-- Returns {admitted, reset, moved}: 1 if the call may run now (0: it was
-- parked), how many keys of the wrong type were deleted, and how many
-- waiting messages were moved back onto the stream.
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
-- stream of its `priority` (`<jobs>:<p>`, the queue's own for 3 or none).
-- The priority is read from the message's end (`"priority":p}`, where
-- writers put it: only a top-level member can end a valid object so), else
-- decoded when the message is small (16 KiB) and names one, so a huge
-- message costs no decode. A lane key that is not a stream is garbage: the
-- message goes to the queue's own stream instead. `jobs` is any lane.
local function lane_of(jobs, message)
  local base = string.gsub(jobs, ':jobs:%d$', ':jobs')
  local p = string.match(string.sub(message, -24), '"priority":([1245])}%s*$')
  if not p and #message <= 16384 and string.find(message, '"priority"', 1, true) then
    local ok, decoded = pcall(cjson.decode, message)
    if ok and type(decoded) == 'table' then
      local n = decoded.priority
      if n == 1 or n == 2 or n == 4 or n == 5 then p = tostring(n) end
    end
  end
  if not p then return base end
  local lane = base .. ':' .. p
  local kind = redis.call('TYPE', lane).ok
  if kind ~= 'none' and kind ~= 'stream' then return base end
  return lane
end

-- The call id of job message `m`, or nil (read as intake.lua reads it).
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

-- Parks the calls of this message's job and key among the next AHEAD
-- entries no worker has been handed (after the consumer group's
-- last-delivered-id: a delivered entry is a worker's to admit or park), in
-- stream order, behind this one. Only an entry that is nothing but its
-- message (no cancel mark), small enough to decode (16 KiB), naming
-- exactly this job and key, not a delayed call, and whose call id holds no
-- slot (a message a hand-on moved back reserved one: it is to run) is
-- parked; anything else stays for the workers. An error reading the group (an ACL without
-- `xinfo|groups`) parks nothing more. Returns how many it parked.
--
-- What a step costs is bounded, whatever is queued: entries are read
-- CHUNK at a time (a stream entry may hold a 16 MiB message, and XRANGE
-- copies what it returns into the script) until READ bytes were read;
-- only an entry holding both `"group":"<key>"` and `"job":"<job>"` is
-- decoded; and once WASTE bytes were decoded and left on the stream (each
-- parking step of the key would decode them again), or a chunk parked
-- nothing (other keys' calls interleave: each parking step would read
-- them again for nothing), the step stops.
local AHEAD = 100
local CHUNK = 10
local READ = 262144
local WASTE = 32768
-- Whether message m may be strict JSON as far as cheap looks tell: cjson
-- reads what strict readers (the workers') refuse, and a call parked ahead
-- that its worker then refuses as unreadable could not give back the slot
-- a hand-on reserved for it. A value that is NaN or an infinity, a hex or
-- zero-led number, an exponent of three digits or more (1e400), or a
-- surrogate escape (a lone one is refused; a pair is left too) keeps the
-- message on the stream, for its worker to judge. Text inside strings
-- that looks so only loses the speed-up.
local function strict_enough(m)
  return not (string.find(m, '[:,%[]%s*%-?[IiNn][NnAa][FfNn]')
    or string.find(m, '[:,%[]%s*%-?0[%dxX]')
    or string.find(m, '[:,%[]%s*%-?%d+%.?%d*[eE][+-]?%d%d%d')
    or string.find(m, '\\u[dD][89a-fA-F]'))
end

local function park_ahead()
  if #ARGV[6] > 16384 then return 0 end
  local ok, this = pcall(cjson.decode, ARGV[6])
  if not ok or type(this) ~= 'table' or type(this.job) ~= 'string'
      or type(this.group) ~= 'string' then
    return 0
  end
  local groups = redis.pcall('XINFO', 'GROUPS', KEYS[4])
  if type(groups) ~= 'table' or groups.err then return 0 end
  local last
  for _, g in ipairs(groups) do
    local name, delivered
    for i = 1, #g - 1, 2 do
      if g[i] == 'name' then name = g[i + 1] end
      if g[i] == 'last-delivered-id' then delivered = g[i + 1] end
    end
    if name == ARGV[4] then last = delivered end
  end
  if type(last) ~= 'string' then return 0 end
  -- The writers' compact JSON, so most other keys' calls cost no decode.
  local mark = '"group":"' .. this.group .. '"'
  local job_mark = '"job":"' .. this.job .. '"'
  local parked, looked, read, wasted = 0, 0, 0, 0
  local from = '(' .. last
  while looked < AHEAD do
    local chunk = redis.call('XRANGE', KEYS[4], from, '+', 'COUNT',
      math.min(CHUNK, AHEAD - looked))
    if #chunk == 0 then return parked end
    local before = parked
    for _, e in ipairs(chunk) do
      looked = looked + 1
      from = '(' .. e[1]
      local f = e[2]
      for i = 1, #f do read = read + #f[i] end
      local m = #f == 2 and f[1] == 'm' and f[2]
      if m and #m <= 16384 and string.find(m, mark, 1, true)
          and string.find(m, job_mark, 1, true) and strict_enough(m) then
        local fine, c = pcall(cjson.decode, m)
        if fine and type(c) == 'table' and c.job == this.job
            and c.group == this.group and c.run_at_ms == nil
            and type(c.id) == 'string'
            and not redis.call('ZSCORE', KEYS[1], c.id) then
          redis.call('RPUSH', KEYS[2], m)
          redis.call('XDEL', KEYS[4], e[1])
          parked = parked + 1
        else
          wasted = wasted + #m
        end
      end
      if read >= READ or wasted >= WASTE then return parked end
    end
    if parked == before then return parked end
  end
  return parked
end

-- Moves the oldest waiting messages onto the stream while slots are free,
-- each reserving its slot; at most `limit` per call.
local function refill()
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
    redis.call('SREM', KEYS[3], ARGV[7])
  end
  return moved
end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  return {1, reset, 0}
end
if redis.call('ZCARD', KEYS[1]) < limit and redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  return {1, reset, 0}
end
-- An entry no longer on the stream was parked already (this script sent
-- again after a connection failed) or completed: nothing to park.
if #redis.call('XRANGE', KEYS[4], ARGV[5], ARGV[5]) == 0 then
  return {0, reset, 0}
end
-- Parked: appended first, so a refused write (out of memory) leaves the
-- entry leased and nothing lost.
redis.call('RPUSH', KEYS[2], ARGV[6])
redis.call('SADD', KEYS[3], ARGV[7])
-- Deleted only when the ack counted it (reply_and_ack.lua says why).
if redis.call('XACK', KEYS[4], ARGV[4], ARGV[5]) == 1 then
  redis.call('XDEL', KEYS[4], ARGV[5])
end
park_ahead()
return {0, reset, refill()}

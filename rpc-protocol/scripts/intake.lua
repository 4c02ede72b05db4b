-- intake.lua: moves what clients put in a service's intake onto its jobs
-- stream, in order. A client role may not XADD (XADD's MAXLEN and MINID
-- options would let it trim away other callers' jobs, and no Redis ACL can
-- forbid an option), so a restricted client RPUSHes its job message onto
-- the intake, a list it can only append to, and workers move it. The
-- worker that runs this has just taken one element off the intake with
-- `BLMOVE intake moving LEFT RIGHT` (the same pipeline, so it runs at once):
-- `moving` holds what a worker took and did not move yet, and is moved
-- first, so nothing is lost if that worker died in between. The intake is
-- touched only once `moving` is empty, so no element overtakes another.
--
-- An element is one of:
--  * larger than ARGV[5] bytes: dead-lettered (its first 1024 bytes and
--    the reason), never put on the stream;
--  * a cancellation request, `cancel <call id>`, applied here as cancel.lua
--    does (the client role may not write the cancelled set or the schedule
--    itself);
--  * a job message, moved as it is (the worker that takes it from the
--    stream checks it like any other), with the field `c` = 1 when its call
--    is cancelled: its id is in the cancelled set, or a cancellation request
--    of this same call cancels it. Its id is read from the message without
--    trusting it: the canonical start `{"v":<n>,"id":"<id>"` (what rpc-runtime
--    writes), else the whole message decoded as JSON if it is at most 64 KiB
--    (decoding costs Redis 10 to 15 ms a MiB); a message without a readable
--    string `id` is moved unflagged (its worker dead-letters it).
--
-- Each call reads only what it moves, a slice at a time, and stops once
-- its byte budget is spent: Redis runs nothing else while a script runs,
-- and copying an element costs it several milliseconds a MiB.
--
-- KEYS[1]  moving: a list of elements taken off the intake, not yet moved
-- KEYS[2]  the intake: a list clients RPUSH onto
-- KEYS[3]  the jobs stream
-- KEYS[4]  the schedule (sorted set of tokens by due time)
-- KEYS[5]  the scheduled messages (hash of token -> job message)
-- KEYS[6]  the cancelled calls (sorted set of call id -> when cancelled, ms)
-- KEYS[7]  the dead-letter stream
-- ARGV[1]  the most elements to take per list in one call (at least 1)
-- ARGV[2]  the byte budget of one call: it takes no more element once the
--          elements it took add up to this many bytes (so it takes at least
--          one, whatever its size, and goes past by one element at most)
-- ARGV[3]  how long cancellations are remembered, in ms
-- ARGV[4]  the longest call id, in bytes
-- ARGV[5]  the largest job message, in bytes (the workers' limit): a larger
--          element is dead-lettered
-- ARGV[6]  the dead-letter stream's approximate cap (XADD MAXLEN ~)
--
-- Returns {moved, cancels, refused, error or '', dead}: job messages moved
-- onto the stream, cancellations applied, cancellation requests refused (an
-- id of the wrong length), the error Redis answered an XADD, and elements
-- dead-lettered for their size. An element Redis refuses to add (out of
-- memory, say) stays where it was, with those after it, and the error is
-- returned: elements leave a list only once they were moved.
local max = math.max(1, tonumber(ARGV[1]) or 1)
local max_bytes = tonumber(ARGV[2]) or 0
local memory = tonumber(ARGV[3]) or 86400000
local longest_id = tonumber(ARGV[4]) or 256
local largest = math.max(1, tonumber(ARGV[5]) or 16777216)
local dead_cap = tonumber(ARGV[6]) or 10000

-- The most elements one LRANGE asks for.
local SLICE = 16
-- What a dead letter keeps of an oversized element.
local KEPT_BYTES = 1024
-- The largest job message decoded in full to read its id.
local DECODE_BYTES = 65536

local moved, cancels, refused, dead, bytes = 0, 0, 0, 0, 0
local now_ms = nil

-- 1. Take the batch: what this call moves, in order, within its budget.
local batch = {}
local taken = {0, 0}

-- Takes elements of list KEYS[list] into the batch until the budget is
-- spent; returns whether the list was emptied. Everything read is taken
-- (reading is most of the cost). A slice asks for no more elements than
-- the budget left holds at the largest size a message may have, so however
-- the elements are sized a call reads its budget and one element more at
-- most (elements over that size aside: Redis's proto-max-bulk-len bounds
-- them).
local function take(list)
  while taken[list] < max do
    if #batch > 0 and bytes >= max_bytes then return false end
    local n = math.floor((max_bytes - bytes) / largest)
    n = math.max(1, math.min(SLICE, n, max - taken[list]))
    local from = taken[list]
    local items = redis.call('LRANGE', KEYS[list], from, from + n - 1)
    for _, item in ipairs(items) do
      batch[#batch + 1] = list
      batch[#batch + 1] = item
      bytes = bytes + #item
      taken[list] = taken[list] + 1
    end
    if #items < n then return true end
  end
  return false
end

if take(1) then take(2) end

-- 2. The calls this batch cancels, so that a job message followed by its
-- cancellation in one batch is moved flagged.
local cancelling = {}
local job_messages = false
for i = 2, #batch, 2 do
  local item = batch[i]
  if #item <= largest then
    if string.sub(item, 1, 7) == 'cancel ' then
      cancelling[string.sub(item, 8)] = true
    else
      job_messages = true
    end
  end
end
-- Whether any call is cancelled at all: when none is, ids are not read.
local any_cancelled = next(cancelling) ~= nil
if job_messages and not any_cancelled then
  any_cancelled = #redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', '+inf', 'LIMIT', 0, 1) > 0
end

-- The call id of job message `item`, or nil.
local function call_id(item)
  local id = string.match(item, '^{"v":%d+,"id":"([^"\\]*)"')
  if id then return id end
  if #item > DECODE_BYTES then return nil end
  local ok, message = pcall(cjson.decode, item)
  if ok and type(message) == 'table' and type(message.id) == 'string' then
    return message.id
  end
  return nil
end

local function is_cancelled(item)
  if not any_cancelled then return false end
  local id = call_id(item)
  if not id or #id < 1 or #id > longest_id then return false end
  return cancelling[id] or redis.call('ZSCORE', KEYS[6], id) ~= false
end

local function cancel(id)
  if #id < 1 or #id > longest_id then
    refused = refused + 1
    return
  end
  if not now_ms then
    local now = redis.call('TIME')
    now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  end
  redis.call('ZADD', KEYS[6], now_ms, id)
  local message = redis.call('HGET', KEYS[5], id)
  if message then
    redis.call('ZREM', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('XADD', KEYS[3], '*', 'm', message, 'c', '1')
  end
  cancels = cancels + 1
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

-- 3. Apply the batch in order; returns an error, or nil.
local done = {0, 0}
local function apply()
  for i = 1, #batch, 2 do
    local list, item = batch[i], batch[i + 1]
    if #item > largest then
      local reason = 'oversized intake element: ' .. #item .. ' bytes, over the limit of '
        .. largest .. ' bytes; m holds its first ' .. KEPT_BYTES .. ' bytes'
      local added = redis.pcall('XADD', KEYS[7], 'MAXLEN', '~', dead_cap, '*',
        'reason', reason, 'm', string.sub(item, 1, KEPT_BYTES))
      if type(added) == 'table' and added.err then return added.err end
      dead = dead + 1
    elseif string.sub(item, 1, 7) == 'cancel ' then
      cancel(string.sub(item, 8))
    else
      local added
      if is_cancelled(item) then
        added = redis.pcall('XADD', KEYS[3], '*', 'm', item, 'c', '1')
      else
        added = redis.pcall('XADD', lane_of(KEYS[3], item), '*', 'm', item)
      end
      if type(added) == 'table' and added.err then return added.err end
      moved = moved + 1
    end
    done[list] = done[list] + 1
  end
  return nil
end

local failed = apply()
for list = 1, 2 do
  if done[list] > 0 then redis.call('LTRIM', KEYS[list], done[list], -1) end
end
if cancels > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now_ms - memory)
  redis.call('PEXPIRE', KEYS[6], memory)
end
return {moved, cancels, refused, failed or '', dead}

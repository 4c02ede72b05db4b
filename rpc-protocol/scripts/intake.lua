-- intake.lua: moves what clients put in a service's intake onto its jobs
-- stream, in order. A client role may not XADD (XADD's MAXLEN and MINID
-- options would let it trim away other callers' jobs, and no Redis ACL can
-- forbid an option), so a restricted client RPUSHes its job message onto
-- the intake, a list it can only append to, and workers move it. The
-- worker that runs this has just taken one element off the intake with
-- `BLMOVE intake moving LEFT RIGHT` (the same pipeline, so it runs at once):
-- `moving` holds what a worker took and did not move yet, and is moved
-- first, so nothing is lost if that worker died in between.
--
-- An element is either a job message (moved as it is: the worker that
-- takes it from the stream checks it like any other) or a cancellation
-- request, `cancel <call id>`, applied here as cancel.lua does (the client
-- role may not write the cancelled set or the schedule itself).
--
-- KEYS[1]  moving: a list of elements taken off the intake, not yet moved
-- KEYS[2]  the intake: a list clients RPUSH onto
-- KEYS[3]  the jobs stream
-- KEYS[4]  the schedule (sorted set of tokens by due time)
-- KEYS[5]  the scheduled messages (hash of token -> job message)
-- KEYS[6]  the cancelled calls (sorted set of call id -> when cancelled, ms)
-- ARGV[1]  the most elements to move per list in one call (at least 1)
-- ARGV[2]  the most bytes of messages to move in one call (at least one
--          element is moved whatever its size)
-- ARGV[3]  how long cancellations are remembered, in ms
-- ARGV[4]  the longest call id, in bytes
--
-- Returns {moved, cancels, refused, error or ''}: messages moved onto the
-- stream, cancellations applied, cancellation requests refused (an id of
-- the wrong length). A message Redis refuses to add (out of memory, say)
-- stays where it was, with those after it, and the error is returned:
-- elements leave a list only once they were moved.
local max = math.max(1, tonumber(ARGV[1]) or 1)
local max_bytes = tonumber(ARGV[2]) or 0
local memory = tonumber(ARGV[3]) or 86400000
local longest_id = tonumber(ARGV[4]) or 256
local moved, cancels, refused, bytes = 0, 0, 0, 0
local now_ms = nil

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

-- Moves up to `max` elements of list `key`; returns an error or nil.
local function drain(key)
  local items = redis.call('LRANGE', key, 0, max - 1)
  local done = 0
  local failed = nil
  for _, item in ipairs(items) do
    if moved + cancels + refused > 0 and bytes + #item > max_bytes then break end
    if string.sub(item, 1, 7) == 'cancel ' then
      cancel(string.sub(item, 8))
    else
      local added = redis.pcall('XADD', KEYS[3], '*', 'm', item)
      if type(added) == 'table' and added.err then
        failed = added.err
        break
      end
      moved = moved + 1
    end
    bytes = bytes + #item
    done = done + 1
  end
  if done > 0 then redis.call('LTRIM', key, done, -1) end
  return failed
end

local failed = drain(KEYS[1])
if not failed then failed = drain(KEYS[2]) end
if cancels > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now_ms - memory)
  redis.call('PEXPIRE', KEYS[6], memory)
end
return {moved, cancels, refused, failed or ''}

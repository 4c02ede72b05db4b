-- complete_batch.lua: the common completions of many jobs of one queue in
-- one call, what reply_and_ack.lua does for one job (and XACK + XDEL for a
-- one-way job), for a worker's whole batch: each caller's replies pushed to
-- its inbox with one RPUSH, every job whose reply went out (and every
-- one-way job) acked, and the acked entries removed from the stream. A job
-- whose reply was refused is not acked.
--
-- The acked entries are removed mostly by trimming. A group delivers in
-- order, so when every id given was leased (XACK acked them all), every
-- entry older than both the oldest entry still leased and the newest id
-- given was delivered and is not leased: it is acked, and one XTRIM MINID
-- removes all of those far more cheaply than XDEL finds them one by one.
-- The acked ids at or past that bound are deleted with XDEL. When some id
-- was not leased, or a reply was refused, every acked id is deleted with
-- XDEL instead, as reply_and_ack.lua does.
--
-- KEYS[1]    the jobs stream
-- KEYS[2..]  the callers' inboxes (lists), each once
-- ARGV[1]    the consumer group
-- ARGV[2]    the newest entry id among the call's ids ('' when unknown:
--            then nothing is trimmed)
-- then, for each inbox KEYS[1 + i] in order: its TTL in ms, the number n
--            of replies to it, its n replies, then their n entry ids
-- then       the entry ids of the jobs that only ack (nothing to reply)
-- (at most 1,000 replies per inbox and 1,000 ids that only ack: Lua's
-- unpack is bounded)
--
-- Returns the refusals, flattened: {k, step, error, ...}, where k is the
-- job's place among the call's entry ids (1-based, in argument order) and
-- step 'R' (its reply was refused: it is not acked); or k = 0 and step 'A'
-- when the ack was refused (then no job of the call was acked); k = -1 and
-- step 'X' when removing the acked entries was refused (the jobs are
-- completed all the same; the entries stay). NOGROUP on the ack is no
-- refusal. An empty table: every step took effect.
local jobs, group, newest = KEYS[1], ARGV[1], ARGV[2]
local refused = {}
-- The ARGV ranges of the ids to ack, as {first, last, first, last, ...}.
local ranges = {}
local at, k = 3, 0
for i = 2, #KEYS do
  local ttl, n = ARGV[at], tonumber(ARGV[at + 1])
  at = at + 2
  local pushed = redis.pcall('RPUSH', KEYS[i], unpack(ARGV, at, at + n - 1))
  if type(pushed) == 'table' and pushed.err then
    for j = 1, n do
      refused[#refused + 1] = k + j
      refused[#refused + 1] = 'R'
      refused[#refused + 1] = pushed.err
    end
  else
    redis.call('PEXPIRE', KEYS[i], ttl)
    ranges[#ranges + 1] = at + n
    ranges[#ranges + 1] = at + 2 * n - 1
  end
  at = at + 2 * n
  k = k + n
end
if at <= #ARGV then
  ranges[#ranges + 1] = at
  ranges[#ranges + 1] = #ARGV
end

local given, acked = 0, 0
for r = 1, #ranges, 2 do
  local a = redis.pcall('XACK', jobs, group, unpack(ARGV, ranges[r], ranges[r + 1]))
  if type(a) == 'table' and a.err then
    if string.sub(a.err, 1, 7) ~= 'NOGROUP' then
      refused[#refused + 1] = 0
      refused[#refused + 1] = 'A'
      refused[#refused + 1] = a.err
      return refused
    end
  else
    acked = acked + a
  end
  given = given + ranges[r + 1] - ranges[r] + 1
end

-- Whether stream id a is older than b ("ms-seq", decimal, no leading
-- zeros; anything else is never older).
local function older(a, b)
  local da, db = string.find(a, '-', 1, true), string.find(b, '-', 1, true)
  if not da or not db then return false end
  if da ~= db then return da < db end
  local ma, mb = string.sub(a, 1, da - 1), string.sub(b, 1, db - 1)
  if ma ~= mb then return ma < mb end
  if #a ~= #b then return #a < #b end
  return a < b
end

-- A removal Redis refuses does not undo the acks: it is reported as
-- k = -1, step 'X', and every job of the call still counts as completed.
local function removal(r)
  if type(r) == 'table' and r.err then
    refused[#refused + 1] = -1
    refused[#refused + 1] = 'X'
    refused[#refused + 1] = r.err
    return false
  end
  return true
end

local bound = nil
if newest ~= '' and #refused == 0 and acked == given and given > 0 then
  bound = newest
  local summary = redis.pcall('XPENDING', jobs, group)
  if type(summary) == 'table' and summary.err then
    bound = nil
  elseif summary[1] > 0 and older(summary[2], newest) then
    bound = summary[2]
  end
end
if bound and not removal(redis.pcall('XTRIM', jobs, 'MINID', bound)) then
  bound = nil
end
for r = 1, #ranges, 2 do
  if not bound then
    if not removal(redis.pcall('XDEL', jobs, unpack(ARGV, ranges[r], ranges[r + 1]))) then break end
  elseif bound == newest then
    -- Everything older than the newest is trimmed.
    removal(redis.pcall('XDEL', jobs, newest))
    break
  else
    local rest = {}
    for a = ranges[r], ranges[r + 1] do
      if not older(ARGV[a], bound) then rest[#rest + 1] = ARGV[a] end
    end
    if #rest > 0 and not removal(redis.pcall('XDEL', jobs, unpack(rest))) then break end
  end
end
return refused

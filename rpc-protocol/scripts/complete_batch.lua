-- complete_batch.lua: the common completions of many jobs, of one queue or
-- of several on one Redis (a sharded service's), in one call, what reply_and_ack.lua does for one job (and XACK + XDEL for a
-- one-way job), for a worker's whole batch: each caller's replies pushed to
-- its inbox with one RPUSH, every job whose reply went out (and every
-- one-way job) acked, and the acked entries removed from the stream. A job
-- whose reply was refused is not acked.
--
-- The acked entries are removed mostly by trimming. The ids of a range
-- (an inbox's, or the ack-only ones) that XACK counted in full were all
-- leased, so delivered; a group delivers in order (it is created at id 0),
-- so every entry older than the newest of them was delivered too, and
-- every one older than the oldest lease still held (XPENDING) as well is
-- acked: one XTRIM MINID removes all of those far more cheaply than XDEL
-- finds them one by one. The ids of those ranges at or past that bound are
-- deleted with XDEL. The ids of a range XACK did not count in full (an id
-- given twice, one not leased) are not deleted here: a later batch's trim
-- removes those that were acked, and an id that names no lease can never
-- make a waiting job go.
--
-- KEYS       the jobs streams and the callers' inboxes (lists), each once
-- ARGV[1]    the consumer group
-- ARGV[2]    the number of streams
-- then, for each stream: the index in KEYS of the jobs stream, the number
--            of its inboxes; for each inbox the index in KEYS of the inbox,
--            its TTL in ms, the number n of replies to it, its n replies,
--            then their n entry ids; then the number m of the stream's
--            jobs that only ack (nothing to reply), and their m entry ids
-- Each inbox's ids, and the ack-only ids, oldest first (out of order, some
-- acked entries stay in the stream until a later batch's trim). At most
-- 1,000 replies per inbox and 1,000 ack-only ids per stream (Lua's unpack
-- is bounded).
--
-- Returns the refusals, flattened: {k, step, error, ...}, where k is the
-- job's place among the call's entry ids (1-based, in argument order, over
-- every stream) and
-- step 'R' (its reply was refused) or 'A' (its ack was refused): either
-- way that job is not acked. k = -1 and step 'X' when removing acked
-- entries was refused (the jobs are completed all the same; the entries
-- stay). NOGROUP on the ack is no refusal. An empty table: every step
-- took effect.
local group = ARGV[1]
local refused = {}
local function refuse(k, step, err)
  refused[#refused + 1] = k
  refused[#refused + 1] = step
  refused[#refused + 1] = err
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
-- k = -1, step 'X'.
local function removal(r)
  if type(r) == 'table' and r.err then
    refuse(-1, 'X', r.err)
    return false
  end
  return true
end

-- Acks the ranges of ARGV {first, last, k of first, ...} on stream jobs,
-- then removes what was acked.
local function ack_and_remove(jobs, ranges)
  -- A range whose ids were all leased (XACK counted each) is "whole": its
  -- ids were delivered by this group.
  local whole = {}
  for r = 1, #ranges, 3 do
    local first, last = ranges[r], ranges[r + 1]
    local a = redis.pcall('XACK', jobs, group, unpack(ARGV, first, last))
    if type(a) == 'table' and a.err then
      if string.sub(a.err, 1, 7) ~= 'NOGROUP' then
        for j = 0, last - first do refuse(ranges[r + 2] + j, 'A', a.err) end
      end
    elseif a == last - first + 1 then
      whole[#whole + 1] = first
      whole[#whole + 1] = last
    end
  end
  if #whole == 0 then
    return
  end
  -- The bound: the newest id of the whole ranges (each range's last, if
  -- they came oldest first; any of them was delivered, whatever the
  -- order), or the oldest lease if older.
  local newest = ARGV[whole[2]]
  for r = 3, #whole, 2 do
    if older(newest, ARGV[whole[r + 1]]) then newest = ARGV[whole[r + 1]] end
  end
  local bound, leased = newest, true
  local summary = redis.pcall('XPENDING', jobs, group)
  if type(summary) == 'table' and summary.err then
    return
  elseif summary[1] == 0 then
    leased = false
  elseif older(summary[2], bound) then
    bound = summary[2]
  end
  if not removal(redis.pcall('XTRIM', jobs, 'MINID', bound)) then
    return
  end
  if not leased then
    -- Nothing leased: the newest id given is acked too, and nothing older
    -- is left.
    removal(redis.pcall('XDEL', jobs, bound))
    return
  end
  for r = 1, #whole, 2 do
    local first, last = whole[r], whole[r + 1]
    -- Oldest first: the ids at or past the bound are at the end.
    local from = last + 1
    while from > first and not older(ARGV[from - 1], bound) do from = from - 1 end
    if from <= last and not removal(redis.pcall('XDEL', jobs, unpack(ARGV, from, last))) then
      return
    end
  end
end

local at, k = 3, 0
for _ = 1, tonumber(ARGV[2]) do
  local jobs, inboxes = KEYS[tonumber(ARGV[at])], tonumber(ARGV[at + 1])
  at = at + 2
  -- The ARGV ranges of the ids to ack, {first, last, k of first, ...}.
  local ranges = {}
  for _ = 1, inboxes do
    local inbox, ttl, n = KEYS[tonumber(ARGV[at])], ARGV[at + 1], tonumber(ARGV[at + 2])
    at = at + 3
    local pushed = redis.pcall('RPUSH', inbox, unpack(ARGV, at, at + n - 1))
    if type(pushed) == 'table' and pushed.err then
      for j = 1, n do refuse(k + j, 'R', pushed.err) end
    else
      redis.call('PEXPIRE', inbox, ttl)
      ranges[#ranges + 1] = at + n
      ranges[#ranges + 1] = at + 2 * n - 1
      ranges[#ranges + 1] = k + 1
    end
    at = at + 2 * n
    k = k + n
  end
  local m = tonumber(ARGV[at])
  at = at + 1
  if m > 0 then
    ranges[#ranges + 1] = at
    ranges[#ranges + 1] = at + m - 1
    ranges[#ranges + 1] = k + 1
  end
  at = at + m
  k = k + m
  if #ranges > 0 then
    ack_and_remove(jobs, ranges)
  end
end
return refused

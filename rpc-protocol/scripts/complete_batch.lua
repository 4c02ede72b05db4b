-- complete_batch.lua: the common completions of many jobs, of one queue or
-- of several on one Redis (a sharded service's), in one call, what
-- reply_and_ack.lua does for one job (and XACK + XDEL for a one-way job),
-- for a worker's whole batch: each caller's replies pushed to its inbox
-- with one RPUSH (whichever queues they came from), every job whose reply
-- went out (and every one-way job) acked, and the acked entries removed
-- from the stream. A job whose reply was refused is not acked.
--
-- A stream's ids come in parts (one per inbox its jobs replied to, one for
-- its jobs that only ack), each acked with its own XACK. The ids of the
-- parts XACK counted in full were all leased, so delivered by this group,
-- and are removed: a few (fewer than FEW_TO_TRIM on the stream) with XDEL;
-- more mostly by trimming: a group delivers in order (it is created at id
-- 0), so every entry older than the newest of them was delivered too, and
-- every one older than the oldest lease still held (XPENDING) as well is
-- acked: one XTRIM MINID removes all of those far more cheaply than XDEL
-- finds them one by one, and the ids at or past that bound go with XDEL.
-- The ids of a part XACK did not count in full (an id given twice, one
-- not leased) are not deleted here: a later trim (a batch's, or a
-- worker's sweep) removes those that were acked, and an id that names no
-- lease can never make a waiting job go.
--
-- One push per inbox, and XDEL alone for a few ids, is what keeps a
-- sharded service's batch cheap: a batch of replies to one caller spread
-- over 8 shards' streams was a push, a TTL, an XPENDING and an XTRIM per
-- stream, and cost Redis 1.2x the CPU per call of one shard (rpc-bench
-- --shards 8).
--
-- KEYS       the jobs streams and the callers' inboxes (lists), each once
-- ARGV[1]    the consumer group
-- ARGV[2]    the number of inboxes I
-- then, for each inbox: the index in KEYS of the inbox, its TTL in ms, the
--            number n of replies to it, its n replies
-- then       the number of streams S
-- then, for each stream: the index in KEYS of the jobs stream, the number
--            P of its parts, P pairs (the inbox whose replies the part's
--            jobs sent, 1 to I, or 0 for jobs that only ack; the number c
--            of the part's entry ids), then the ids of every part, part
--            after part (each part's oldest first: out of order, some
--            acked entries stay in the stream until a later trim)
-- At most 1,000 replies per inbox and 1,000 ids per part (Lua's unpack is
-- bounded). An inbox may be named twice (more than 1,000 replies), a
-- stream too.
--
-- Returns the refusals, flattened: {k, step, error, ...}, where k is the
-- job's place among the call's entry ids (1-based, in argument order, over
-- every stream) and step 'R' (its reply was refused) or 'A' (its ack was
-- refused): either way that job is not acked. k = -1 and step 'X' when
-- removing acked entries was refused (the jobs are completed all the same;
-- the entries stay). NOGROUP on the ack is no refusal. An empty table:
-- every step took effect.
local group = ARGV[1]
-- Fewer acked ids than this on a stream are deleted with XDEL: for a few,
-- the trim's XPENDING and XTRIM cost more than they save.
local FEW_TO_TRIM = 8
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

-- Whether id is a stream id as Redis writes it: "ms-seq", decimal, no
-- leading zeros.
local function canonical(id)
  return string.find(id, '^[1-9]%d*%-%d+$') ~= nil or string.find(id, '^0%-%d+$') ~= nil
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

-- Deletes every id of the parts (ARGV {first, last, ...}) with XDEL.
local function delete(jobs, parts)
  for p = 1, #parts, 2 do
    if not removal(redis.pcall('XDEL', jobs, unpack(ARGV, parts[p], parts[p + 1]))) then
      return
    end
  end
end

-- Removes the acked entries of stream jobs: every id of the parts XACK
-- counted in full (ARGV {first, last, ...}, each part oldest first), n ids
-- in all.
local function remove(jobs, parts, n)
  if n < FEW_TO_TRIM then
    delete(jobs, parts)
    return
  end
  -- The bound: the newest id acked (each part's last, since each came
  -- oldest first; any of them was delivered, whatever the order), or the
  -- oldest lease if older. Only an id written as Redis writes it may be
  -- the bound: XACK takes "11" for 11-0, but no lease would ever be found
  -- older than "11", and XTRIM MINID 11 would remove leases.
  local newest
  for p = 2, #parts, 2 do
    local id = ARGV[parts[p]]
    if canonical(id) and (not newest or older(newest, id)) then newest = id end
  end
  if not newest then
    delete(jobs, parts)
    return
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
  for p = 1, #parts, 2 do
    local first, last = parts[p], parts[p + 1]
    -- Oldest first: the ids at or past the bound are at the end.
    local from = last + 1
    while from > first and not older(ARGV[from - 1], bound) do from = from - 1 end
    if from <= last and not removal(redis.pcall('XDEL', jobs, unpack(ARGV, from, last))) then
      return
    end
  end
end

-- The replies: one push per inbox, then its TTL. failed[i]: why inbox i's
-- push was refused.
local at, failed = 3, {}
for i = 1, tonumber(ARGV[2]) do
  local inbox, ttl, n = KEYS[tonumber(ARGV[at])], ARGV[at + 1], tonumber(ARGV[at + 2])
  local pushed = redis.pcall('RPUSH', inbox, unpack(ARGV, at + 3, at + 2 + n))
  if type(pushed) == 'table' and pushed.err then
    failed[i] = pushed.err
  else
    redis.call('PEXPIRE', inbox, ttl)
  end
  at = at + 3 + n
end

-- The acks, per stream: one XACK per part whose replies went out (or that
-- only acks), then the removal of what XACK counted. (A part is acked
-- apart from the others so that an id given twice, one not leased, or one
-- Redis cannot parse, which refuses a whole XACK, spoil only their own.)
local k = 0
local streams = tonumber(ARGV[at])
at = at + 1
for _ = 1, streams do
  local jobs, count = KEYS[tonumber(ARGV[at])], tonumber(ARGV[at + 1])
  local heads = at + 2
  local id = heads + 2 * count
  -- The parts XACK counted in full ({first, last, ...}), and how many ids
  -- they hold.
  local wholes, n_whole = {}, 0
  for p = 0, count - 1 do
    local inbox, c = tonumber(ARGV[heads + 2 * p]), tonumber(ARGV[heads + 2 * p + 1])
    local err = inbox > 0 and failed[inbox]
    if err then
      for j = 1, c do refuse(k + j, 'R', err) end
    elseif c > 0 then
      local a = redis.pcall('XACK', jobs, group, unpack(ARGV, id, id + c - 1))
      if type(a) == 'table' and a.err then
        if string.sub(a.err, 1, 7) ~= 'NOGROUP' then
          for j = 1, c do refuse(k + j, 'A', a.err) end
        end
      elseif a == c then
        wholes[#wholes + 1] = id
        wholes[#wholes + 1] = id + c - 1
        n_whole = n_whole + c
      end
    end
    id = id + c
    k = k + c
  end
  at = id
  if n_whole > 0 then
    remove(jobs, wholes, n_whole)
  end
end
return refused

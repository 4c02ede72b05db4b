-- trim_acked.lua: removes from a jobs stream the entries of a worker's
-- batch of ack-only completions (one-way jobs), which the worker acked
-- with a plain `XACK` just before, in the same pipeline, and every older
-- acked entry with them, by trimming (PROTOCOL.md, "Taking and running
-- jobs": a worker's batch of completions). It takes no ids but the newest:
-- passing a batch's ids into a script costs Redis more than the acks.
--
-- The newest id acked was delivered by this group, and a group delivers in
-- order (it is created at id 0), so every entry older than it was
-- delivered too, and every one older than the oldest lease still held
-- (`XPENDING`) as well is acked: one `XTRIM MINID` removes them all. When
-- nothing is leased, every entry the group delivered is acked, so the
-- bound moves on to the group's last delivered id (`XINFO GROUPS`), which
-- also removes what earlier batches left; the bound itself goes with
-- `XDEL`. Then the newest id must be one the group delivered (not newer
-- than its last delivered id: a completion from before Redis restarted
-- with a clock behind could name one that is not), and when it is not, or
-- the group cannot be read (an ACL without `xinfo|groups`), nothing is
-- trimmed and the script answers `0-0`. When a lease older than the
-- newest id is held, the batch's ids at or past the oldest lease stay:
-- the script answers that bound. Either way the worker deletes its ids at
-- or past the bound itself (`XDEL`, with its next read).
--
-- KEYS[1]  the jobs stream
-- ARGV[1]  the consumer group
-- ARGV[2]  the newest entry id of the batch the worker just acked, or '+'
--          (a worker's periodic sweep, acking nothing): the group's last
--          delivered id, so the trim goes to the oldest lease when one is
--          held, else to the last delivered entry. It removes what no read
--          of a worker will delete (a worker killed between a trim and its
--          next read).
--
-- Returns '' when every acked entry up to ARGV[2] is gone, else the bound
-- (an entry id): the batch's ids at or past it are still in the stream.
-- An error from Redis (`NOGROUP`, a key of another type) is returned as
-- is; the jobs are acked all the same.

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
-- leading zeros. Only such an id may be the bound: XACK takes "99" for
-- 99-0, but no lease compares older than "99" as text, and XTRIM MINID 99
-- would remove leases and waiting jobs.
local function canonical(id)
  return string.find(id, '^[1-9]%d*%-%d+$') ~= nil or string.find(id, '^0%-%d+$') ~= nil
end

local bound = ARGV[2]
if bound ~= '+' and not canonical(bound) then return '0-0' end
local summary = redis.pcall('XPENDING', KEYS[1], ARGV[1])
if type(summary) == 'table' and summary.err then return summary end
if summary[1] == 0 then
  local last
  local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
  if type(groups) == 'table' and not groups.err then
    for _, g in ipairs(groups) do
      local name, delivered
      for i = 1, #g - 1, 2 do
        if g[i] == 'name' then name = g[i + 1] end
        if g[i] == 'last-delivered-id' then delivered = g[i + 1] end
      end
      if name == ARGV[1] and type(delivered) == 'string' then last = delivered end
    end
  end
  -- Unless the newest id is one the group delivered, nothing is trimmed:
  -- the worker deletes its ids itself.
  if not last or older(last, bound) then return '0-0' end
  bound = last
elseif bound == '+' or older(summary[2], bound) then
  bound = summary[2]
end
local trimmed = redis.pcall('XTRIM', KEYS[1], 'MINID', bound)
if type(trimmed) == 'table' and trimmed.err then return trimmed end
if bound ~= ARGV[2] and summary[1] ~= 0 then
  return bound
end
local deleted = redis.pcall('XDEL', KEYS[1], bound)
if type(deleted) == 'table' and deleted.err then return deleted end
return ''

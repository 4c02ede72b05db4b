-- complete.lua: ends one job. Each write is checked before the next, so a
-- write Redis refuses (out of memory, wrong type, no permission) stops
-- every step after it, above all the ack: a job is acked only once its
-- reply, kept result, retry or dead letter is written.
--
-- ARGV[1]  the plan: the steps to run, in this order, one letter each:
--            R  push the reply onto the caller's inbox, then set the
--               inbox's TTL (only after the push succeeded: never expire
--               a key this script did not just write)
--            K  keep the reply under the call's result key
--            Q  queue the retry message on the jobs stream
--            S  put the retry message on the schedule, due after a delay
--               on Redis's clock (a retry with backoff, a hand-back, a
--               delayed call taken early); unless the call is in the
--               cancelled set: then it is queued at once flagged `c` = 1,
--               to be answered `cancelled` (a cancellation that came while
--               the worker held it, which found nothing on the schedule to
--               take off). A token already scheduled is never replaced
--               (call ids are chosen by senders: anyone could otherwise
--               rewrite or move another caller's scheduled call): the same
--               message again (a resent call, a completion sent again) is
--               only acked; another one is dead-lettered with the reason
--               "a call with this id is already scheduled"
--            D  add the message to the dead-letter stream (capped)
--            A  ack the entry and, when the ack counted it (it named a
--               lease), delete it from the jobs stream
-- KEYS     in plan order: R the inbox, K the result key, Q the jobs
--          stream, S the schedule, the scheduled messages, the cancelled
--          calls, the jobs stream and the dead-letter stream (five keys),
--          D the dead-letter stream, A the jobs stream
-- ARGV[2]  the reply (R, K)
-- ARGV[3]  the inbox TTL in ms (R)
-- ARGV[4]  the result TTL in ms (K)
-- ARGV[5]  the retry message (Q, S)
-- ARGV[6]  the dead letter's reason (D)
-- ARGV[7]  the message as it was on the queue (D)
-- ARGV[8]  the dead-letter stream's approximate cap (D, S)
-- ARGV[9]  the consumer group (A)
-- ARGV[10] the entry id (A)
-- ARGV[11] the retry's schedule token, its call id (S)
-- ARGV[12] the retry's delay in ms (S)
-- ARGV[13] '' or when the retry is due, in ms on Redis's clock (S; wins
--          over the delay: a delayed call's own start time)
-- ARGV[14] optional: the worker that dead-letters it, absent or '' for
--          none (D; the dead letter's `worker` field)
-- ARGV[15] optional: how long its last attempt ran, in ms, absent or ''
--          for none (D; the dead letter's `duration_ms` field)
--
-- Returns 1 when every step ran, or {step, error} for the first step Redis
-- refused: the steps before it took effect, it and those after did not.
-- NOGROUP on the ack is not a refusal: the group, and so the lease, is gone.
local plan = ARGV[1]
local k = 1
for i = 1, #plan do
  local step = string.sub(plan, i, i)
  local key = KEYS[k]
  k = k + 1
  local r
  if step == 'R' then
    r = redis.pcall('RPUSH', key, ARGV[2])
    if type(r) == 'table' and r.err then return {step, r.err} end
    r = redis.pcall('PEXPIRE', key, ARGV[3])
  elseif step == 'K' then
    r = redis.pcall('SET', key, ARGV[2], 'PX', ARGV[4])
  elseif step == 'Q' then
    r = redis.pcall('XADD', key, '*', 'm', ARGV[5])
  elseif step == 'S' then
    local scheduled, cancelled, jobs, dead = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
    k = k + 4
    local gone = redis.pcall('ZSCORE', cancelled, ARGV[11])
    if type(gone) == 'string' then
      r = redis.pcall('XADD', jobs, '*', 'm', ARGV[5], 'c', '1')
    else
      -- HGET, then HSET only when it found nothing: HSETNX in one atomic
      -- step, with the commands the worker role already has.
      local held = redis.pcall('HGET', scheduled, ARGV[11])
      if type(held) == 'table' and held.err then return {step, held.err} end
      if type(held) == 'string' then
        if held ~= ARGV[5] then
          r = redis.pcall('XADD', dead, 'MAXLEN', '~', ARGV[8], '*',
            'reason', 'a call with this id is already scheduled', 'm', ARGV[5])
        end
      else
        local due = tonumber(ARGV[13])
        if not due then
          local now = redis.call('TIME')
          due = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[12])
        end
        r = redis.pcall('HSET', scheduled, ARGV[11], ARGV[5])
        if type(r) == 'table' and r.err then return {step, r.err} end
        -- The hash held no message under this token, so a score the
        -- schedule may hold for it belongs to nothing: replaced.
        r = redis.pcall('ZADD', key, due, ARGV[11])
      end
    end
  elseif step == 'D' then
    local entry = {'reason', ARGV[6], 'm', ARGV[7]}
    if ARGV[14] and ARGV[14] ~= '' then
      entry[#entry + 1] = 'worker'
      entry[#entry + 1] = ARGV[14]
    end
    if ARGV[15] and ARGV[15] ~= '' then
      entry[#entry + 1] = 'duration_ms'
      entry[#entry + 1] = ARGV[15]
    end
    r = redis.pcall('XADD', key, 'MAXLEN', '~', ARGV[8], '*', unpack(entry))
  elseif step == 'A' then
    r = redis.pcall('XACK', key, ARGV[9], ARGV[10])
    if type(r) == 'table' and r.err then
      if string.sub(r.err, 1, 7) ~= 'NOGROUP' then return {step, r.err} end
      r = 0
    elseif r == 1 then
      -- Deleted only when XACK counted it (reply_and_ack.lua says why).
      r = redis.pcall('XDEL', key, ARGV[10])
    end
  else
    return {step, 'ERR unknown step'}
  end
  if type(r) == 'table' and r.err then return {step, r.err} end
end
return 1

-- reply_and_ack.lua: the common completion of a job, its reply then its
-- ack, as complete.lua's plan "RA" does it but cheaper for Redis (fewer
-- arguments, no plan to read): every call of a job that answers pays it.
-- The ack runs only if the reply was written, the inbox's TTL is set
-- only after a successful push, and the entry is deleted only when the
-- ack counted it.
--
-- KEYS[1]  the caller's inbox (a list)
-- KEYS[2]  the jobs stream
-- ARGV[1]  the reply
-- ARGV[2]  the inbox TTL in ms
-- ARGV[3]  the consumer group
-- ARGV[4]  the entry id
--
-- Returns 1, or {step, error} for the step Redis refused ('R' the reply,
-- 'A' the ack), as complete.lua does. NOGROUP on the ack is no refusal.
local pushed = redis.pcall('RPUSH', KEYS[1], ARGV[1])
if type(pushed) == 'table' and pushed.err then return {'R', pushed.err} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local acked = redis.pcall('XACK', KEYS[2], ARGV[3], ARGV[4])
if type(acked) == 'table' and acked.err then
  if string.sub(acked.err, 1, 7) ~= 'NOGROUP' then return {'A', acked.err} end
elseif acked == 1 then
  -- Deleted only when XACK counted it, so it named a lease: an id that
  -- names none (a completion sent again, or one from before Redis
  -- restarted with its clock behind, whose id a new, waiting job may now
  -- carry) never makes a job go.
  redis.call('XDEL', KEYS[2], ARGV[4])
end
return 1

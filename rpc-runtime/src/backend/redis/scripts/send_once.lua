-- send_once.lua: sends a call under an idempotency key. If the key is
-- held, nothing is sent and the holder is returned; else the key is set
-- to this call and the call is queued (or scheduled), in one atomic step,
-- so of any number of racing senders exactly one call is enqueued.
--
-- KEYS[1]  the idempotency key (a string: "<call id> <fingerprint>")
-- KEYS[2]  the jobs stream
-- KEYS[3]  the schedule (sorted set of tokens by due time, ms)
-- KEYS[4]  the scheduled messages (hash of token -> job message)
-- ARGV[1]  the call id
-- ARGV[2]  the fingerprint: SHA-1 hex of "<Service.job>\n<params JSON>"
-- ARGV[3]  the job message
-- ARGV[4]  how long the key is held, in ms
-- ARGV[5]  the delay in ms, or -1 to queue at once
--
-- Returns {1, id, 1} when this call was sent, or {0, holder's id, same}
-- where same is 1 when the holder has the same fingerprint. A held value
-- that is not "<id> <fingerprint>" is returned whole with same = 0.
local held = redis.call('GET', KEYS[1])
if held then
  local space = string.find(held, ' ', 1, true)
  if not space then return {0, held, 0} end
  local same = 0
  if string.sub(held, space + 1) == ARGV[2] then same = 1 end
  return {0, string.sub(held, 1, space - 1), same}
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[4])
local delay = tonumber(ARGV[5])
if delay < 0 then
  redis.call('XADD', KEYS[2], '*', 'm', ARGV[3])
else
  local now = redis.call('TIME')
  local due = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + delay
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
  redis.call('ZADD', KEYS[3], due, ARGV[1])
end
return {1, ARGV[1], 1}

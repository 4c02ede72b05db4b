#!lua flags=no-writes
-- excerpt_schedule.lua: reads jobs waiting on a service's schedule with
-- their tokens and messages cut to a window of bytes, plus the full
-- lengths, so a page can list the schedule or show one call while only the
-- windows leave Redis (tokens and messages are written by clients, and
-- may be any size). Members are read one at a time, so the script never
-- holds more than one whole message, and it stops once what it read adds
-- up to ARGV[5] bytes, so one call never holds Redis for long: the caller
-- goes on with another. Read-only (run with EVALSHA_RO), every count
-- capped here.
--
-- KEYS[1]  the schedule (sorted set of tokens by due time, ms)
-- KEYS[2]  the scheduled messages (hash of token -> job message)
-- ARGV[1]  `soonest`: ARGV[7] tokens (capped at 1000) from rank ARGV[6],
--          soonest due first; `ids`: the tokens ARGV[6..] (at most 1000)
-- ARGV[2]  the window's offset in each message, in bytes (0-based)
-- ARGV[3]  the window's length in bytes (capped at 1 MiB)
-- ARGV[4]  the window's length for tokens, in bytes (capped at 1024)
-- ARGV[5]  stop after the job that brings the bytes read past this
--          (capped at 64 MiB)
--
-- Returns `{more, job, ...}`: more is 1 when the byte limit stopped the
-- call before it read all it was asked for, else 0. Each job is
-- `{token_len, token_window, due, message_len, message_window}`, where due
-- is the score as text (nil when the token is not in the sorted set) and
-- message_len is -1 without a message (whose window is then nil). For
-- `ids`, the n-th job answers the n-th token, nil when it is neither in
-- the set nor the hash.
local offset = math.max(tonumber(ARGV[2]) or 0, 0)
local length = math.min(math.max(tonumber(ARGV[3]) or 0, 0), 1048576)
local token_length = math.min(math.max(tonumber(ARGV[4]) or 0, 0), 1024)
local max_bytes = math.min(math.max(tonumber(ARGV[5]) or 0, 1), 67108864)
local bytes = 0

local function job(token, due)
  -- HMGET, not HGET: the read-only operator user has only the former.
  local message = redis.call('HMGET', KEYS[2], token)[1]
  bytes = bytes + #token
  if not due and not message then
    return false
  end
  local message_len, window = -1, false
  if message then
    bytes = bytes + #message
    message_len = #message
    window = string.sub(message, offset + 1, offset + length)
  end
  return {#token, string.sub(token, 1, token_length), due or false, message_len, window}
end

local result = {0}
if ARGV[1] == 'soonest' then
  local first = math.max(tonumber(ARGV[6]) or 0, 0)
  local count = math.min(math.max(tonumber(ARGV[7]) or 0, 0), 1000)
  for rank = first, first + count - 1 do
    if bytes > max_bytes then
      result[1] = 1
      break
    end
    local got = redis.call('ZRANGE', KEYS[1], rank, rank, 'WITHSCORES')
    if #got == 0 then
      break
    end
    result[#result + 1] = job(got[1], got[2])
  end
elseif ARGV[1] == 'ids' then
  for i = 6, math.min(#ARGV, 1005) do
    if bytes > max_bytes then
      result[1] = 1
      break
    end
    result[#result + 1] = job(ARGV[i], redis.call('ZSCORE', KEYS[1], ARGV[i]))
  end
else
  return redis.error_reply('ERR excerpt_schedule: ARGV[1] must be soonest or ids')
end
return result

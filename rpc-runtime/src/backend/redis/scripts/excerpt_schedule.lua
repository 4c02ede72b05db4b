#!lua flags=no-writes
-- excerpt_schedule.lua: reads jobs waiting on a service's schedule with
-- their tokens and messages cut to a window of bytes, plus the full
-- lengths, so a page can list the schedule or show one call while only the
-- windows leave Redis (tokens and messages are written by clients, and
-- may be any size). Members are read one at a time, so the script never
-- holds more than one whole message. Read-only (run with EVALSHA_RO), every
-- count capped here.
--
-- KEYS[1]  the schedule (sorted set of tokens by due time, ms)
-- KEYS[2]  the scheduled messages (hash of token -> job message)
-- ARGV[1]  `soonest`: the first ARGV[5] tokens, soonest due first (capped
--          at 1000); `ids`: the tokens ARGV[5..] (at most 1000)
-- ARGV[2]  the window's offset in each message, in bytes (0-based)
-- ARGV[3]  the window's length in bytes (capped at 1 MiB)
-- ARGV[4]  the window's length for tokens, in bytes (capped at 1024)
--
-- Returns one element per job: `{token_len, token_window, due,
-- message_len, message_window}`, where due is the score as text (nil when
-- the token is not in the sorted set) and message_len is -1 without a
-- message (whose window is then nil). For `ids`, a token that is neither in
-- the set nor the hash gives nil in its place.
local offset = math.max(tonumber(ARGV[2]) or 0, 0)
local length = math.min(math.max(tonumber(ARGV[3]) or 0, 0), 1048576)
local token_length = math.min(math.max(tonumber(ARGV[4]) or 0, 0), 1024)

local function job(token, due)
  -- HMGET, not HGET: the read-only operator user has only the former.
  local message = redis.call('HMGET', KEYS[2], token)[1]
  if not due and not message then
    return false
  end
  local message_len, window = -1, false
  if message then
    message_len = #message
    window = string.sub(message, offset + 1, offset + length)
  end
  return {#token, string.sub(token, 1, token_length), due or false, message_len, window}
end

local result = {}
if ARGV[1] == 'soonest' then
  local count = math.min(math.max(tonumber(ARGV[5]) or 0, 0), 1000)
  for rank = 0, count - 1 do
    local got = redis.call('ZRANGE', KEYS[1], rank, rank, 'WITHSCORES')
    if #got == 0 then
      break
    end
    result[#result + 1] = job(got[1], got[2])
  end
elseif ARGV[1] == 'ids' then
  for i = 5, math.min(#ARGV, 1004) do
    result[#result + 1] = job(ARGV[i], redis.call('ZSCORE', KEYS[1], ARGV[i]))
  end
else
  return redis.error_reply('ERR excerpt_schedule: ARGV[1] must be soonest or ids')
end
return result

#!lua flags=no-writes
-- excerpt_value.lua: reads a window of a string value (a kept result) and
-- its full length, so a page shows the start of a large reply and a
-- download reads it a chunk at a time, while only the window leaves Redis.
-- (`GETRANGE` and `STRLEN` would do the same with two more commands for the
-- operator's ACL; this needs only `GET`.) Read-only (run with EVALSHA_RO).
--
-- KEYS[1]  the string key
-- ARGV[1]  the window's offset in bytes (0-based)
-- ARGV[2]  the window's length in bytes (capped at 1 MiB)
--
-- Returns `{len, window}`, or nil when the key does not exist.
local value = redis.call('GET', KEYS[1])
if not value then
  return false
end
local offset = math.max(tonumber(ARGV[1]) or 0, 0)
local length = math.min(math.max(tonumber(ARGV[2]) or 0, 0), 1048576)
return {#value, string.sub(value, offset + 1, offset + length)}

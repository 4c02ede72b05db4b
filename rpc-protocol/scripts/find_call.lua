#!lua flags=no-writes
-- find_call.lua: finds the entries of a stream whose message holds a text
-- (a call id, as JSON writes it), newest first, one bounded page at a time.
-- Redis has no index by call id, so looking a call up means reading every
-- entry; here that happens inside Redis, so no message crosses the network,
-- and each call of the script stops after a number of entries or bytes, so
-- no call holds Redis for long: the caller pages with the returned cursor.
-- Entries are read one at a time, so the script never holds more than one
-- whole entry. Read-only (run with EVALSHA_RO), every count capped here.
--
-- KEYS[1]  the stream
-- ARGV[1]  the text to find (plain text, not a pattern)
-- ARGV[2]  where to start: `+` for the newest entry, or an entry id to go
--          on with the entries older than it
-- ARGV[3]  the field to look in (`m`)
-- ARGV[4]  look at no more than this many entries (capped at 10000)
-- ARGV[5]  stop after the entry that brings the bytes looked at past this
--          (capped at 64 MiB)
-- ARGV[6]  return no more than this many matches (capped at 100)
-- ARGV[7]  optional: `all` to match every entry, whatever ARGV[1] (a page
--          of the newest entries, by id only; the dashboard's list of
--          failures pages through dead letters so)
--
-- Returns `{next, id, ...}`: the ids of the matching entries, newest first,
-- after `next`, the id to pass as ARGV[2] to go on, or nil when the oldest
-- entry has been looked at.
local needle = ARGV[1]
local field = ARGV[3]
local max_entries = math.min(math.max(tonumber(ARGV[4]) or 0, 1), 10000)
local max_bytes = math.min(math.max(tonumber(ARGV[5]) or 0, 1), 67108864)
local max_matches = math.min(math.max(tonumber(ARGV[6]) or 0, 1), 100)
local all = ARGV[7] == 'all'

local cursor = ARGV[2]
if cursor ~= '+' then
  cursor = '(' .. cursor
end
local matches = {}
local entries, bytes = 0, 0
while entries < max_entries and bytes <= max_bytes and #matches < max_matches do
  local got = redis.call('XREVRANGE', KEYS[1], cursor, '-', 'COUNT', 1)
  if #got == 0 then
    return {false, unpack(matches)}
  end
  local id, fields = got[1][1], got[1][2]
  if all then
    matches[#matches + 1] = id
  end
  for j = 1, #fields - 1, 2 do
    if fields[j] == field then
      local value = fields[j + 1]
      bytes = bytes + #value
      if not all and needle ~= '' and string.find(value, needle, 1, true) then
        matches[#matches + 1] = id
      end
      break
    end
  end
  entries = entries + 1
  cursor = '(' .. id
end
return {string.sub(cursor, 2), unpack(matches)}

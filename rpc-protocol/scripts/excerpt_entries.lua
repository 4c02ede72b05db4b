#!lua flags=no-writes
-- excerpt_entries.lua: reads stream entries with each wanted field cut to a
-- window of bytes, plus each field's full length. A page can then show the
-- first kilobytes of an 8 MB message, and a download read it a chunk at a
-- time, while only the window leaves Redis. Entries are read one at a time,
-- so the script never holds more than one whole entry, and it stops once
-- the entries it read add up to ARGV[4] bytes, so one call never holds
-- Redis for long however large the entries (copying a value into Lua costs
-- Redis about as much as sending it): the caller goes on with another call.
-- Read-only (run with EVALSHA_RO), and every count is capped here, so any
-- role that may read the stream may run it with any arguments.
--
-- KEYS[1]  the stream
-- ARGV[1]  `range`: the entries from ARGV[6+k] to ARGV[7+k] (XRANGE
--          bounds; `(id` excludes id), oldest first, at most ARGV[8+k] of
--          them (capped at 1000);
--          `ids`: the entries whose ids are ARGV[6+k..] (at most 1000)
-- ARGV[2]  the window's offset in each field's value, in bytes (0-based)
-- ARGV[3]  the window's length in bytes (capped at 1 MiB)
-- ARGV[4]  stop after the entry that brings the bytes read past this
--          (capped at 64 MiB)
-- ARGV[5]  k, the number of wanted fields (capped at 8)
-- ARGV[6..5+k]  the wanted field names
--
-- Returns `{more, entry, ...}`: more is 1 when the byte limit stopped the
-- call before it read all it was asked for, else 0. Each entry is `{id,
-- {len_1, window_1, ..., len_k, window_k}}`, where len is the field's full
-- length in bytes (-1 without that field, whose window is then nil). For
-- `ids`, the n-th entry answers the n-th id, nil when there is no such
-- entry; the ids after the last answered are left for the next call.
local offset = math.max(tonumber(ARGV[2]) or 0, 0)
local length = math.min(math.max(tonumber(ARGV[3]) or 0, 0), 1048576)
local max_bytes = math.min(math.max(tonumber(ARGV[4]) or 0, 1), 67108864)
local k = math.min(math.max(tonumber(ARGV[5]) or 0, 0), 8)
local wanted = {}
for i = 1, k do
  wanted[i] = ARGV[5 + i]
end
local bytes = 0

local function cut(entry)
  local fields = entry[2]
  for j = 2, #fields, 2 do
    bytes = bytes + #fields[j]
  end
  local out = {}
  for i = 1, k do
    local found = false
    for j = 1, #fields - 1, 2 do
      if fields[j] == wanted[i] then
        local value = fields[j + 1]
        out[#out + 1] = #value
        out[#out + 1] = string.sub(value, offset + 1, offset + length)
        found = true
        break
      end
    end
    if not found then
      out[#out + 1] = -1
      out[#out + 1] = false
    end
  end
  return {entry[1], out}
end

local result = {0}
if ARGV[1] == 'range' then
  local cursor = ARGV[6 + k]
  local stop = ARGV[7 + k]
  local count = math.min(math.max(tonumber(ARGV[8 + k]) or 0, 0), 1000)
  while #result - 1 < count do
    if bytes > max_bytes then
      result[1] = 1
      break
    end
    local got = redis.call('XRANGE', KEYS[1], cursor, stop, 'COUNT', 1)
    if #got == 0 then
      break
    end
    result[#result + 1] = cut(got[1])
    cursor = '(' .. got[1][1]
  end
elseif ARGV[1] == 'ids' then
  for i = 6 + k, math.min(#ARGV, 5 + k + 1000) do
    if bytes > max_bytes then
      result[1] = 1
      break
    end
    local got = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i], 'COUNT', 1)
    if #got == 0 then
      result[#result + 1] = false
    else
      result[#result + 1] = cut(got[1])
    end
  end
else
  return redis.error_reply('ERR excerpt_entries: ARGV[1] must be range or ids')
end
return result

#!lua flags=no-writes
-- excerpt_entries.lua: reads stream entries with each wanted field cut to a
-- window of bytes, plus each field's full length. A page can then show the
-- first kilobytes of an 8 MB message, and a download read it a chunk at a
-- time, while only the window leaves Redis. Entries are read one at a time,
-- so the script never holds more than one whole entry. Read-only (run with
-- EVALSHA_RO), and every count is capped here, so any role that may read
-- the stream may run it with any arguments.
--
-- KEYS[1]  the stream
-- ARGV[1]  `range`: the entries from ARGV[5+k] to ARGV[6+k] (XRANGE
--          bounds; `(id` excludes id), oldest first, at most ARGV[7+k] of
--          them (capped at 1000);
--          `ids`: the entries whose ids are ARGV[5+k..] (at most 1000)
-- ARGV[2]  the window's offset in each field's value, in bytes (0-based)
-- ARGV[3]  the window's length in bytes (capped at 1 MiB)
-- ARGV[4]  k, the number of wanted fields (capped at 8)
-- ARGV[5..4+k]  the wanted field names
--
-- Returns one element per entry: `{id, {len_1, window_1, ..., len_k,
-- window_k}}`, where len is the field's full length in bytes (-1 without
-- that field, whose window is then nil). For `ids`, an id with no entry
-- gives nil in its place.
local offset = math.max(tonumber(ARGV[2]) or 0, 0)
local length = math.min(math.max(tonumber(ARGV[3]) or 0, 0), 1048576)
local k = math.min(math.max(tonumber(ARGV[4]) or 0, 0), 8)
local wanted = {}
for i = 1, k do
  wanted[i] = ARGV[4 + i]
end

local function cut(entry)
  local fields = entry[2]
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

local result = {}
if ARGV[1] == 'range' then
  local cursor = ARGV[5 + k]
  local stop = ARGV[6 + k]
  local count = math.min(math.max(tonumber(ARGV[7 + k]) or 0, 0), 1000)
  while #result < count do
    local got = redis.call('XRANGE', KEYS[1], cursor, stop, 'COUNT', 1)
    if #got == 0 then
      break
    end
    result[#result + 1] = cut(got[1])
    cursor = '(' .. got[1][1]
  end
elseif ARGV[1] == 'ids' then
  for i = 5 + k, math.min(#ARGV, 4 + k + 1000) do
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

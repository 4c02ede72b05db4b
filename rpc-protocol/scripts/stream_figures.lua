#!lua flags=no-writes
-- stream_figures.lua: a stream's length and the number of entries ever
-- added to it, as XINFO STREAM reports them, without the stream's first
-- and last entries, which XINFO STREAM sends whole: with 8 MB messages a
-- page that only counts jobs would read 16 MB per service. Read-only (run
-- with EVALSHA_RO).
--
-- KEYS[1]  the stream
--
-- Returns `{length, entries_added}` (entries_added nil before Redis 7), or
-- nil when there is no such key.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local length, added = 0, false
for i = 1, #info - 1, 2 do
  if info[i] == 'length' then
    length = info[i + 1]
  elseif info[i] == 'entries-added' then
    added = info[i + 1]
  end
end
return {length, added}

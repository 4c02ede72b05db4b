-- shards.lua: reads a service's shard count and records the shards a
-- worker or operator serves, in one atomic step on the service's slot
-- (shard 0's). `count` is what clients place calls on; `seen` is the most
-- shards the service ever had, and never goes down here, so a worker
-- reads every shard a client may have written to, and lowering the count
-- (or a schema's number) loses nothing.
--
-- A value that is not a whole number in 1..ARGV[3] is garbage: it is
-- reported as absent (0) and overwritten only by a valid `set`.
--
-- KEYS[1]  the shard count: a hash with fields `count` and `seen`
-- ARGV[1]  'serve': raise `seen` to ARGV[2] if lower (a worker serving
--          ARGV[2] shards; one shard is what an absent `seen` means, so
--          an unsharded service's worker writes nothing); 'set': set `count` to ARGV[2] and raise `seen`
--          to at least the old count and ARGV[2] (an operator); 'read':
--          neither
-- ARGV[2]  a shard count (ignored by 'read')
-- ARGV[3]  the most shards a service may have
--
-- Returns {count, seen}: 0 for a field that is absent or garbage.
local max = tonumber(ARGV[3]) or 256
local function valid(v)
  local n = tonumber(v)
  if n and n >= 1 and n <= max and n == math.floor(n) then return n end
  return 0
end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'hash' and kind ~= 'none' then
  return {0, 0}
end
local fields = redis.call('HMGET', KEYS[1], 'count', 'seen')
local count, seen = valid(fields[1]), valid(fields[2])
local n = valid(ARGV[2])
if ARGV[1] == 'set' and n > 0 then
  if count > seen then seen = count end
  count = n
  if n > seen then seen = n end
  redis.call('HSET', KEYS[1], 'count', count, 'seen', seen)
elseif ARGV[1] == 'serve' and n > seen and n > 1 then
  seen = n
  redis.call('HSET', KEYS[1], 'seen', seen)
end
return {count, seen}

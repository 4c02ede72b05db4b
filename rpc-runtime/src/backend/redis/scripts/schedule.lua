-- schedule.lua: puts a job on the service's schedule, due after a delay
-- measured on Redis's own clock (TIME), so no client's clock decides when
-- a job runs.
--
-- KEYS[1]  the schedule: a sorted set of entry tokens scored by due time (ms)
-- KEYS[2]  the scheduled messages: a hash of entry token -> job message
-- ARGV[1]  the entry token (unique per scheduled message)
-- ARGV[2]  the job message
-- ARGV[3]  the delay in ms
--
-- Returns the due time, in ms since the Unix epoch on Redis's clock.
local now = redis.call('TIME')
local due = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], due, ARGV[1])
return due

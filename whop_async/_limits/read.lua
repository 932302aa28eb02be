-- The whole of one operation's budget, for the rules that run in Python.
-- KEYS: the budget (hash), its accepted answers, its refusals (sorted sets)
-- ARGV: now ('' for Redis's own time)
-- Returns the time, then each key's contents, or the type it holds when that is wrong.
local now = ARGV[1]
if now == '' then
  local time = redis.call('TIME')
  now = string.format('%.17g', tonumber(time[1]) + tonumber(time[2]) / 1000000)
end
local expected = {'hash', 'zset', 'zset'}
local commands = {{'HGETALL'}, {'ZRANGE', 0, -1}, {'ZRANGE', 0, -1}}
local reply = {now}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then
    reply[i + 1] = {}
  elseif kind ~= expected[i] then
    reply[i + 1] = kind
  else
    reply[i + 1] = redis.call(commands[i][1], key, unpack(commands[i], 2))
  end
end
return reply

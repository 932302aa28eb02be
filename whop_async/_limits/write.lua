-- Write what the Python rules changed in one operation's budget, unless another change
-- came in between (its version moved); a take's turns may have come in between, so the
-- next turn's time only ever moves ahead.
-- KEYS: the budget (hash), its accepted answers, its refusals (sorted sets)
-- ARGV: the version read ('' for none, '*' to replace whatever is there), TTL (ms),
--       the change as JSON: {"set": {field: value}, "delete": [field],
--       "accepted": [[slot, member]], "refused": [[slot, member]], "forget": slot}
local change = cjson.decode(ARGV[3])
if ARGV[1] == '*' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
elseif (redis.call('HGET', KEYS[1], 'v') or '') ~= ARGV[1] then
  return 0
end
for _, name in ipairs({'tat', 'queue_at'}) do
  local new = change.set[name]
  local old = tonumber(redis.call('HGET', KEYS[1], name) or '')
  if new and old and old > tonumber(new) then change.set[name] = nil end
end
local fields = {}
for name, value in pairs(change.set) do
  table.insert(fields, name)
  table.insert(fields, value)
end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
if #change.delete > 0 then redis.call('HDEL', KEYS[1], unpack(change.delete)) end
for i, kind in ipairs({'accepted', 'refused'}) do
  local key = KEYS[i + 1]
  for _, entry in ipairs(change[kind]) do redis.call('ZADD', key, entry[1], entry[2]) end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. change.forget)
end
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('PEXPIRE', key, ARGV[2]) end
end
return 1

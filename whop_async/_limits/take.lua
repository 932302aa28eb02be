-- A turn of one operation's shared budget: go now, go at a booked moment, or wait.
-- The copies of the Python rules below (the rate in force, the gate's check and its
-- probe, pacing, counting accepted answers, checking stored values) are kept equal to
-- them by tests that run both on the same events; constants come from Python.
--
-- KEYS: the budget (hash), its accepted answers, its refusals (sorted sets), the
--       budget's workers (sorted set)
-- ARGV: now ('' for Redis's own time), ceiling, burst, turns booked ahead, whether
--       the asker was told to come back ('1') or not, accepted answers to count,
--       seconds owed, worker, TTL (ms), nonce, then the bounds: ahead, gate, lease,
--       past
-- (generated from shared.py)

local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) + tonumber(time[2]) / 1000000
end
local ceiling, burst, ahead = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local queued = ARGV[5] == '1'
local accepted, owed = tonumber(ARGV[6]), tonumber(ARGV[7])
local worker, ttl, nonce = ARGV[8], ARGV[9], ARGV[10]
local bounds = {
  ahead = tonumber(ARGV[11]), gate = tonumber(ARGV[12]),
  lease = tonumber(ARGV[13]), past = tonumber(ARGV[14]),
}

local function fmt(x)
  return string.format('%.17g', x)
end

-- Python's float floor division (slot numbers must match the Python rules' exactly).
local function floordiv(x, y)
  local mod = math.fmod(x, y)
  local div = (x - mod) / y
  if mod ~= 0 and (y < 0) ~= (mod < 0) then div = div - 1 end
  if div == 0 then return 0 end
  local floor = math.floor(div)
  if div - floor > 0.5 then floor = floor + 1 end
  return floor
end

local function json_number(raw)
  local body = string.gsub(raw, '[eE][%+%-]?%d+$', '', 1)
  body = string.gsub(body, '%.%d+$', '', 1)
  if string.match(body, '^%-?0$') or string.match(body, '^%-?[1-9]%d*$') then
    return tonumber(raw)
  end
  return nil
end

-- shared.checked: a stored value of a kind, or nil when it is not one.
local function checked(kind, raw)
  if kind == 'flag' then
    if raw == 'true' then return true elseif raw == 'false' then return false end
    return nil
  end
  if kind == 'phase' then
    if PHASES[raw] then return raw end
    return nil
  end
  local x = json_number(raw)
  if x == nil or x ~= x or x == math.huge or x == -math.huge then return nil end
  local relative, low, high, integral = unpack(KINDS[kind])
  local base = 0
  if relative then base = now end
  if type(low) == 'string' then low = bounds[low] end
  if type(high) == 'string' then high = bounds[high] end
  if x < base + low or x > base + high then return nil end
  if integral and x ~= math.floor(x) then return nil end
  return x
end

-- A value that is not a budget: replaced by a fresh budget, and the caller told why.
-- The workers' set is not the budget: replacing it alone leaves the budget as it is.
local bad = ''
local fresh = false
local function replace(reason, budget, ...)
  if bad == '' then bad = reason end
  if budget then fresh = true end
  redis.call('DEL', ...)
end

local expected = {'hash', 'zset', 'zset', 'zset'}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= expected[i] then
    if i == 4 then
      replace(key .. ' is a ' .. kind, false, key)
    else
      replace(key .. ' is a ' .. kind, true, KEYS[1], KEYS[2], KEYS[3])
    end
  end
end

local names = {}
for i, field in ipairs(HOT) do names[i] = field[1] end
local stored = redis.call('HMGET', KEYS[1], unpack(names))
local b = {}
for i, field in ipairs(HOT) do
  local raw = stored[i]
  if raw then
    local value = checked(field[2], raw)
    if value == nil then
      replace(field[1] .. ' = ' .. string.sub(raw, 1, 40), true, KEYS[1], KEYS[2], KEYS[3])
      break
    end
    b[field[1]] = value
  end
end
if fresh then b = {} end
for _, field in ipairs(HOT) do
  if b[field[1]] == nil then b[field[1]] = field[3] end
end

if accepted > 0 then
  local slot = floordiv(now, SLOT)
  local member = '[' .. fmt(slot) .. ',' .. fmt(accepted) .. ',"' .. nonce .. '"]'
  redis.call('ZADD', KEYS[2], fmt(slot), member)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. fmt(floordiv(now - KEPT, SLOT)))
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('ZADD', KEYS[4], fmt(now), '"' .. worker .. '"')
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. fmt(now - ALIVE))
local alive = redis.call('ZCARD', KEYS[4])
redis.call('PEXPIRE', KEYS[4], ttl)

local changed = {}
local function answer(kind, value, gated, firm)
  local written = {}
  for _, name in ipairs(changed) do
    table.insert(written, name)
    table.insert(written, fmt(b[name]))
  end
  if #written > 0 then
    redis.call('HSET', KEYS[1], unpack(written))
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return {kind, fmt(value), gated, firm, alive, fmt(now), bad}
end

-- RateEstimate.rate
local function rate()
  if b.cut_rate == math.huge then return ceiling end
  if b.phase ~= MEASURED then return math.min(ceiling, b.cut_rate) end
  local elapsed = math.min(math.max(0, now - b.last_cut), CLIMB_LONGEST)
  return math.min(ceiling, b.cut_rate * (1 + CLIMB * elapsed ^ 3))
end

local in_force = rate()
-- Pacing.owe
if owed > 0 and in_force ~= math.huge then
  b.tat = math.max(b.tat, now + burst / in_force) + owed
  table.insert(changed, 'tat')
end

-- Probed.wait and Probed.take_probe
if not b.passing then
  if now < b.lease_until then return answer('wait', b.lease_until - now, 1, 0) end
  if now < b.probe_at then return answer('wait', b.probe_at - now, 1, 1) end
  b.lease_until = now + PROBE_LEASE
  b.v = b.v + 1
  table.insert(changed, 'lease_until')
  table.insert(changed, 'v')
  return answer('probe', now, 0, 1)
end

-- Pacing.take
if in_force == math.huge then return answer('send', now, 0, 1) end
local interval = 1 / in_force
local within = ahead * interval
local due = math.max(now, b.tat - (burst - 1) * interval)
local newcomer = ahead > 0 and not queued
local ask_at = due - within
if ask_at > now + EARLY or (newcomer and b.queue_at > now) then
  if ahead > 0 then
    ask_at = math.max(ask_at, b.queue_at + interval)
    b.queue_at = ask_at
    table.insert(changed, 'queue_at')
  end
  return answer('wait', ask_at - now, 0, 1)
end
b.tat = math.max(b.tat, due) + interval
table.insert(changed, 'tat')
return answer('send', due, 0, 1)

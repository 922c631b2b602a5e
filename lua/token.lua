-- token.lua: issue a buyer's purchase token (获取秒杀令牌), one per user per activity.
--
-- Why a token at all: the purchase step is the expensive, contended one. Only
-- buyers holding a live token reach it, and the number of live tokens is bounded
-- by a factor of the remaining stock, so a flood of buyers cannot all pile onto
-- the purchase script.
--
-- KEYS[1] seckill:activity:{A}         hash: limit_per_user, starts_at_ms, ends_at_ms, ...
-- KEYS[2] seckill:inventory:{A}        remaining stock
-- KEYS[3] seckill:user_limit:{A}       hash: user U -> what U already bought in A
-- KEYS[4] seckill:user_token:{A}:U     U's live token
-- KEYS[5] seckill:token:{A}:T          the candidate token T -> "U" (pending)
-- KEYS[6] seckill:live_tokens:{A}      zset: live token -> expiry (ms)
-- ARGV[1] user id U   ARGV[2] candidate token T   ARGV[3] now (ms)
-- ARGV[4] token ttl (ms)   ARGV[5] issuance factor in per mille (1500 = 1.5 x stock)
--
-- Returns {'OK', token, expires_at_ms} or {CODE, detail}; CODE is one of
-- BAD_ARG, NOT_FOUND, NOT_STARTED, ENDED, SOLD_OUT, LIMIT_EXCEEDED,
-- TOKENS_EXHAUSTED (detail: ms until the next live token expires).

local function posint(s)
  if type(s) ~= 'string' or not string.match(s, '^[1-9]%d*$') or #s > 15 then
    return nil
  end
  return tonumber(s)
end

local user, candidate = ARGV[1], ARGV[2]
local now, ttl, factor = posint(ARGV[3]), posint(ARGV[4]), posint(ARGV[5])
if not user or user == '' or not candidate or candidate == '' or not now or not ttl or not factor then
  return {'BAD_ARG', 'user, token, now, ttl and factor are required positive values'}
end

local act = redis.call('HMGET', KEYS[1], 'limit_per_user', 'starts_at_ms', 'ends_at_ms')
if not act[1] then return {'NOT_FOUND', ''} end
local limit, starts, ends = tonumber(act[1]), tonumber(act[2]), tonumber(act[3])
if now < starts then return {'NOT_STARTED', tostring(starts)} end
if now >= ends then return {'ENDED', tostring(ends)} end

local remaining = tonumber(redis.call('GET', KEYS[2]) or '0')
if remaining <= 0 then return {'SOLD_OUT', '0'} end

local bought = tonumber(redis.call('HGET', KEYS[3], user) or '0')
if bought >= limit then return {'LIMIT_EXCEEDED', tostring(bought)} end

-- Asking again returns the same unexpired token.
local existing = redis.call('GET', KEYS[4])
if existing then
  local pttl = redis.call('PTTL', KEYS[4])
  if pttl > 0 then return {'OK', existing, now + pttl} end
end

-- Bound the live tokens: forget the expired ones, then count.
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
local cap = math.ceil(remaining * factor / 1000)
if redis.call('ZCARD', KEYS[6]) >= cap then
  local first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  local wait = 1000
  if first[2] then wait = math.max(1, tonumber(first[2]) - now) end
  return {'TOKENS_EXHAUSTED', tostring(wait)}
end

local expires = now + ttl
if not redis.call('SET', KEYS[5], user, 'PX', ttl, 'NX') then
  return {'BAD_ARG', 'token collision'}
end
redis.call('SET', KEYS[4], candidate, 'PX', ttl)
redis.call('ZADD', KEYS[6], expires, candidate)
return {'OK', candidate, expires}

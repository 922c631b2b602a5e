-- token.lua: issue a buyer's purchase token (获取秒杀令牌), one per user per activity.
--
-- Why a token at all: the purchase step is the expensive, contended one. Only
-- buyers holding a live token reach it, and the number of live tokens is bounded
-- by a factor of the remaining stock, so a flood of buyers cannot all pile onto
-- the purchase script.
--
-- Tokens are fields of two hashes per activity (see purchase.lua for why), which
-- expire a day after the activity's end. Redis 7.0 cannot expire a field, so a
-- token's value carries its expiry, and the fields of expired tokens go when the
-- live-token set forgets them here, which keeps the hash as bounded as that set.
--
-- KEYS[1] seckill:activity:{A}         hash: limit_per_user, starts_at_ms, ends_at_ms, ...
-- KEYS[2] seckill:inventory:{A}        remaining stock
-- KEYS[3] seckill:user_limit:{A}       hash: user U -> what U already bought in A
-- KEYS[4] seckill:user_token:{A}       hash: user U -> "T:<expires ms>", U's latest token
-- KEYS[5] seckill:token:{A}            hash: token T -> "U:<expires ms>" (live; purchase.lua marks it used)
-- KEYS[6] seckill:live_tokens:{A}      zset: live token -> expiry (ms)
-- KEYS[7] seckill:user_token:{A}:U     U's live token in the layout before the hashes (read only:
--                                      a token issued before an upgrade is still U's one token)
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

-- Asking again returns the same token while it is live: unexpired and not yet
-- used (a used one holds "U:<until>:<order id>", no longer "U:<expires>").
local mine = redis.call('HGET', KEYS[4], user)
if mine then
  local token, expires = string.match(mine, '^(.*):(%d+)$')
  if token and tonumber(expires) > now and redis.call('HGET', KEYS[5], token) == user .. ':' .. expires then
    return {'OK', token, tonumber(expires)}
  end
else
  local old = redis.call('GET', KEYS[7])
  if old and redis.call('HEXISTS', KEYS[5], old) == 0 then
    local pttl = redis.call('PTTL', KEYS[7])
    if pttl > 0 then return {'OK', old, now + pttl} end
  end
end

-- Bound the live tokens: forget the expired ones (and their fields), then count.
local expired = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now)
if #expired > 0 then
  -- In slices: unpack's limit is a few thousand values.
  for i = 1, #expired, 1000 do
    redis.call('HDEL', KEYS[5], unpack(expired, i, math.min(i + 999, #expired)))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
end
local cap = math.ceil(remaining * factor / 1000)
if redis.call('ZCARD', KEYS[6]) >= cap then
  local first = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  local wait = 1000
  if first[2] then wait = math.max(1, tonumber(first[2]) - now) end
  return {'TOKENS_EXHAUSTED', tostring(wait)}
end

local expires = string.format('%d', now + ttl)
if redis.call('HSETNX', KEYS[5], candidate, user .. ':' .. expires) == 0 then
  return {'BAD_ARG', 'token collision'}
end
redis.call('HSET', KEYS[4], user, candidate .. ':' .. expires)
redis.call('ZADD', KEYS[6], expires, candidate)
-- Kept a day after the end, as purchase.lua keeps the buyers' counts; NX: set
-- once, then moved only by a change of the end.
local keep_until = string.format('%d', ends + 86400000)
redis.call('PEXPIREAT', KEYS[4], keep_until, 'NX')
redis.call('PEXPIREAT', KEYS[5], keep_until, 'NX')
return {'OK', candidate, now + ttl}

-- purchase.lua: the sale itself (扣减库存), hardened.
--
-- One script does everything a sale means, so that no crash or race can split
-- it: verify and consume the one-time token, check the per-user limit and the
-- stock, DECRBY the stock, count the user's purchase and the sold total, and
-- append the order event to the activity's stream. Either all of it happens or
-- none of it does.
--
-- The token is the idempotency key: once used it remembers its order, and a
-- retry with it returns that order ('REPLAY') instead of a second sale.
--
-- KEYS[1] seckill:activity:{A}         hash: price_cents, limit_per_user, starts_at_ms, ends_at_ms
-- KEYS[2] seckill:inventory:{A}        remaining stock
-- KEYS[3] seckill:sold:{A}             sold count
-- KEYS[4] seckill:user_limit:{A}:U     what U bought in A
-- KEYS[5] seckill:user_token:{A}:U     U's live token
-- KEYS[6] seckill:token:{A}:T          T -> "U" (live) or "U:<order id>" (used)
-- KEYS[7] seckill:user_order:{A}:U     list of U's order ids in A
-- KEYS[8] queue:seckill_order:{A}      order event stream
-- KEYS[9] seckill:live_tokens:{A}      zset of live tokens
-- ARGV[1] user id U   ARGV[2] token T   ARGV[3] quantity (as the client sent it)
-- ARGV[4] now (ms)    ARGV[5] pay timeout (ms)
-- ARGV[6] how long a used token keeps answering retries (ms)
--
-- The order id is "<activity id>-<stream entry id>": unique, ordered, and it
-- points at its own event, so a queued order can be found before the worker
-- has written its row.
--
-- Returns {'OK', order_id, remaining, sold, created_at_ms, pay_deadline_ms, amount_cents},
-- {'REPLAY', order_id} or {CODE, detail}; CODE is one of BAD_ARG, BAD_QUANTITY,
-- NOT_FOUND, INVALID_TOKEN, NOT_STARTED, ENDED, LIMIT_EXCEEDED, SOLD_OUT.

local function posint(s)
  if type(s) ~= 'string' or not string.match(s, '^[1-9]%d*$') or #s > 15 then
    return nil
  end
  return tonumber(s)
end

local user, token = ARGV[1], ARGV[2]
local now, pay_timeout, keep_used = posint(ARGV[4]), posint(ARGV[5]), posint(ARGV[6])
if not user or user == '' or not token or token == '' or not now or not pay_timeout or not keep_used then
  return {'BAD_ARG', 'user, token, now, pay timeout and retention are required'}
end

-- A negative, zero, fractional or non-numeric quantity never reaches DECRBY.
local qty = posint(ARGV[3])
if not qty then return {'BAD_QUANTITY', tostring(ARGV[3])} end

local act = redis.call('HMGET', KEYS[1], 'price_cents', 'limit_per_user', 'starts_at_ms', 'ends_at_ms', 'id')
if not act[1] then return {'NOT_FOUND', ''} end
local price, limit, starts, ends = tonumber(act[1]), tonumber(act[2]), tonumber(act[3]), tonumber(act[4])
local activity_id = act[5]

-- One MGET for the three strings the checks need: each redis.call costs about
-- as much as a small command, and this script runs once per sale.
local state = redis.call('MGET', KEYS[6], KEYS[4], KEYS[2])
local held = state[1]
if not held then return {'INVALID_TOKEN', 'unknown or expired'} end
local owner, used_order = string.match(held, '^([^:]+):(.+)$')
if not owner then owner = held end
if owner ~= user then return {'INVALID_TOKEN', 'not yours'} end
if used_order then return {'REPLAY', used_order} end

if now < starts then return {'NOT_STARTED', tostring(starts)} end
if now >= ends then return {'ENDED', tostring(ends)} end

local bought = tonumber(state[2] or '0')
if qty > limit or bought + qty > limit then
  return {'LIMIT_EXCEEDED', tostring(limit - bought)}
end

local remaining = tonumber(state[3] or '0')
if remaining < qty then return {'SOLD_OUT', tostring(remaining)} end

-- The sale. Quantities and times go to Redis as the strings the caller sent,
-- not as Lua numbers, which Redis would format as floats.
local qty_s, now_s = ARGV[3], ARGV[4]
remaining = redis.call('DECRBY', KEYS[2], qty_s)
local sold = redis.call('INCRBY', KEYS[3], qty_s)
-- The user's count must outlive the activity (whose end may have moved since
-- the last purchase), or the limit could be reset by waiting. A first purchase
-- creates it with its expiry in one command.
local keep_until = string.format('%d', ends + 86400000)
if bought == 0 then
  redis.call('SET', KEYS[4], qty_s, 'PXAT', keep_until)
else
  redis.call('INCRBY', KEYS[4], qty_s)
  redis.call('PEXPIREAT', KEYS[4], keep_until)
end
local amount = price * qty
local deadline = now + pay_timeout
local event_id = redis.call('XADD', KEYS[8], '*',
  'activity_id', activity_id, 'user_id', user, 'quantity', qty_s, 'amount_cents', string.format('%d', amount),
  'created_at_ms', now_s, 'pay_deadline_ms', string.format('%d', deadline), 'token', token)
local order_id = activity_id .. '-' .. event_id
redis.call('RPUSH', KEYS[7], order_id)
redis.call('PEXPIREAT', KEYS[7], keep_until)

-- Consume the token: it now answers retries with this order, and the user may
-- ask for a new one for a further purchase within the limit.
redis.call('SET', KEYS[6], user .. ':' .. order_id, 'PX', ARGV[6])
redis.call('DEL', KEYS[5])
redis.call('ZREM', KEYS[9], token)
return {'OK', order_id, remaining, sold, now, deadline, amount}

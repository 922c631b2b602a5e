-- release.lua: give a cancelled or expired order's stock back, exactly once.
--
-- Cancel, expiry and a retried release can all race for the same order; the
-- released-set membership decides which one of them returns the stock, and
-- every other call is a no-op that says so.
--
-- KEYS[1] seckill:inventory:{A}        remaining stock
-- KEYS[2] seckill:sold:{A}             sold count
-- KEYS[3] seckill:user_limit:{A}       hash: user U -> what U bought in A
-- KEYS[4] seckill:released:{A}         set of order ids whose stock came back
-- ARGV[1] order id   ARGV[2] quantity of the order   ARGV[3] the order's user
--
-- Returns {'OK', remaining, sold}, {'ALREADY', ''} or {CODE, detail}; CODE is
-- one of BAD_ARG, BAD_QUANTITY, OVER_RELEASE (sold is smaller than the quantity:
-- the order does not belong to this sold count, and nothing is changed).

local order_id, user = ARGV[1], ARGV[3]
if not order_id or order_id == '' then return {'BAD_ARG', 'order id required'} end
if not user or user == '' then return {'BAD_ARG', 'user required'} end
local qs = ARGV[2]
if type(qs) ~= 'string' or not string.match(qs, '^[1-9]%d*$') or #qs > 15 then
  return {'BAD_QUANTITY', tostring(qs)}
end
local qty = tonumber(qs)

if redis.call('SISMEMBER', KEYS[4], order_id) == 1 then return {'ALREADY', ''} end
local sold = tonumber(redis.call('GET', KEYS[2]) or '0')
if sold < qty then return {'OVER_RELEASE', tostring(sold)} end

redis.call('SADD', KEYS[4], order_id)
local remaining = redis.call('INCRBY', KEYS[1], qty)
sold = redis.call('DECRBY', KEYS[2], qty)
local bought = tonumber(redis.call('HGET', KEYS[3], user) or '0')
if bought > 0 then
  redis.call('HINCRBY', KEYS[3], user, -math.min(bought, qty))
end
return {'OK', remaining, sold}

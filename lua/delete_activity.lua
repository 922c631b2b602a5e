-- delete_activity.lua: removes an activity that has sold nothing, in one step.
--
-- Why a script: the check ("nothing sold, no order waiting") and the delete
-- must be one atomic step. Checked first and deleted after, a purchase could
-- land in between and its accepted order would lose its activity, its stock
-- counters and its stream. Here a purchase either ran before (and the delete
-- refuses) or runs after (and finds no activity: NOT_FOUND).
--
-- KEYS[1] seckill:activity:{A}            hash
-- KEYS[2] seckill:inventory:{A}           remaining stock
-- KEYS[3] seckill:sold:{A}                sold count
-- KEYS[4] seckill:live_tokens:{A}         zset of live tokens
-- KEYS[5] queue:seckill_order:{A}         order events not yet rows
-- KEYS[6] queue:seckill_order_dead:{A}    dead-lettered order events
-- KEYS[7] seckill:user_limit:{A}          buyers' counts (all zero: nothing is sold)
-- KEYS[8] seckill:user_order:{A}          buyers' order lists (empty: nothing is sold)
-- KEYS[9] seckill:user_token:{A}          buyers' tokens
-- KEYS[10] seckill:token:{A}              tokens
--
-- Returns {'OK'}, {'NOT_FOUND', ''}, {'SOLD', sold} or {'ORDERS_WAITING', n}
-- (order events still in the stream or dead-lettered: they need an operator).

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'NOT_FOUND', ''}
end
local sold = tonumber(redis.call('GET', KEYS[3]) or '0')
if sold > 0 then
  return {'SOLD', tostring(sold)}
end
local waiting = redis.call('XLEN', KEYS[5]) + redis.call('XLEN', KEYS[6])
if waiting > 0 then
  return {'ORDERS_WAITING', tostring(waiting)}
end
redis.call('DEL', unpack(KEYS))
return {'OK'}

-- restock.lua: change an activity's total stock without breaking the invariant.
--
-- inventory + sold == total_stock must hold at every instant, so the total,
-- the remaining stock and the check against what is already sold change in
-- one script: a sale can never slip in between.
--
-- KEYS[1] seckill:activity:{A}   KEYS[2] seckill:inventory:{A}   KEYS[3] seckill:sold:{A}
-- ARGV[1] new total stock (non-negative integer)
-- Returns {'OK', remaining} or {CODE, detail}; CODE is NOT_FOUND, BAD_ARG,
-- or BELOW_SOLD (the new total is smaller than what is already sold).

local total = ARGV[1]
if type(total) ~= 'string' or not string.match(total, '^%d+$') or #total > 15 then
  return {'BAD_ARG', 'total stock must be a non-negative integer'}
end
total = tonumber(total)
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND', ''} end
local sold = tonumber(redis.call('GET', KEYS[3]) or '0')
if total < sold then return {'BELOW_SOLD', tostring(sold)} end
redis.call('HSET', KEYS[1], 'total_stock', total)
redis.call('SET', KEYS[2], total - sold)
return {'OK', total - sold}

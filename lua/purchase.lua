-- purchase.lua: the sale itself (扣减库存), hardened, for one buyer or a batch.
--
-- One script does everything a sale means, so that no crash or race can split
-- it: verify and consume the one-time token, check the per-user limit and the
-- stock, DECRBY the stock, count the user's purchase and the sold total, and
-- append the order event to the activity's stream. Either all of it happens or
-- none of it does.
--
-- Why batches: a hot item is one hash slot on one Redis thread, so its sales
-- are serial however many backends there are. When purchases of one activity
-- arrive together, the backend hands them over in one call (group commit, the
-- 合并扣减 of hot-item inventories): the activity, the stock and the counters
-- are read and written once per batch instead of once per buyer. Each purchase
-- in a batch still gets its own answer, in order, exactly as if it had been
-- sent alone after the ones before it (a token used earlier in the batch
-- replays, a user's count includes the batch's earlier sales).
--
-- The token is the idempotency key: once used it remembers its order, and a
-- retry with it returns that order ('REPLAY') instead of a second sale.
--
-- KEYS[1] seckill:activity:{A}     hash: price_cents, limit_per_user, starts_at_ms, ends_at_ms, id
-- KEYS[2] seckill:inventory:{A}    remaining stock
-- KEYS[3] seckill:sold:{A}         sold count
-- KEYS[4] queue:seckill_order:{A}  order event stream
-- KEYS[5] seckill:live_tokens:{A}  zset of live tokens
-- KEYS[6] seckill:user_limit:{A}   hash: user U -> what U bought in A
-- then three keys per purchase i (1-based), at 6 + 3(i-1) + 1 .. 3:
--   seckill:user_token:{A}:U   U's live token
--   seckill:token:{A}:T        T -> "U" (live) or "U:<order id>" (used)
--   seckill:user_order:{A}:U   list of U's order ids in A
--
-- Why the buyers' counts are one hash per activity: the hash has one expiry,
-- the activity's end plus a day, which this script and every change of the
-- activity's end (the backend's PATCH) move together. A count per key would
-- keep the expiry of the end at the time of the purchase, so moving the end
-- later would let the count expire while the activity still sells, and the
-- buyer buy past the limit.
-- ARGV[1] pay timeout (ms)   ARGV[2] how long a used token keeps answering retries (ms)
-- then four arguments per purchase, at 2 + 4(i-1) + 1 .. 4:
--   user id U, token T, quantity (as the client sent it), now (ms)
--
-- The order id is "<activity id>-<stream entry id>": unique, ordered, and it
-- points at its own event, so a queued order can be found before the worker
-- has written its row.
--
-- Returns one reply per purchase, in order: {'OK', order_id, remaining, sold,
-- created_at_ms, pay_deadline_ms, amount_cents}, {'REPLAY', order_id} or
-- {CODE, detail}; CODE is one of BAD_ARG, BAD_QUANTITY, NOT_FOUND,
-- INVALID_TOKEN, NOT_STARTED, ENDED, LIMIT_EXCEEDED, SOLD_OUT. A malformed
-- call as a whole answers {{'BAD_ARG', why}}.

local function posint(s)
  if type(s) ~= 'string' or not string.match(s, '^[1-9]%d*$') or #s > 15 then
    return nil
  end
  return tonumber(s)
end

local SHARED_KEYS, KEYS_EACH, SHARED_ARGS, ARGS_EACH = 6, 3, 2, 4
local n = (#KEYS - SHARED_KEYS) / KEYS_EACH
local pay_timeout, keep_used = posint(ARGV[1]), posint(ARGV[2])
if n < 1 or n % 1 ~= 0 or #ARGV ~= SHARED_ARGS + ARGS_EACH * n or not pay_timeout or not keep_used then
  return {{'BAD_ARG', 'expected 6 + 3n keys and 2 + 4n arguments with a pay timeout and a retention'}}
end

local act = redis.call('HMGET', KEYS[1], 'price_cents', 'limit_per_user', 'starts_at_ms', 'ends_at_ms', 'id')
local price, limit, starts, ends = tonumber(act[1]), tonumber(act[2]), tonumber(act[3]), tonumber(act[4])
local activity_id = act[5]

-- One MGET for every string the checks need (stock, sold, and each buyer's
-- token) and one HMGET for the buyers' counts: each redis.call costs about as
-- much as a small command.
local wanted, buyers = {KEYS[2], KEYS[3]}, {}
for i = 1, n do
  local k = SHARED_KEYS + KEYS_EACH * (i - 1)
  wanted[#wanted + 1] = KEYS[k + 2]
  buyers[i] = ARGV[SHARED_ARGS + ARGS_EACH * (i - 1) + 1]
end
local state = redis.call('MGET', unpack(wanted))
local counts = redis.call('HMGET', KEYS[6], unpack(buyers))
local remaining = tonumber(state[1] or '0')
local sold = tonumber(state[2] or '0')

-- What this batch has already written, by token key and by buyer, so later
-- purchases see it.
local written, bought_now = {}, {}
local function current(key, index)
  local w = written[key]
  if w ~= nil then return w end
  return state[index]
end

-- A user's count and order list must outlive the activity, or the limit
-- could be reset by waiting: they are kept until a day after its end.
local keep_until = ends and string.format('%d', ends + 86400000)

local replies, consumed_user_tokens, consumed_tokens = {}, {}, {}
local sold_now = 0
for i = 1, n do
  local k = SHARED_KEYS + KEYS_EACH * (i - 1)
  local user_token_key, token_key, order_list_key = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local a = SHARED_ARGS + ARGS_EACH * (i - 1)
  local user, token, qty_s, now_s = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local now = posint(now_s)
  -- A negative, zero, fractional or non-numeric quantity never reaches DECRBY.
  local qty = posint(qty_s)

  local reply
  if user == '' or token == '' or not now then
    reply = {'BAD_ARG', 'user, token and now are required'}
  elseif not qty then
    reply = {'BAD_QUANTITY', tostring(qty_s)}
  elseif not price then
    reply = {'NOT_FOUND', ''}
  else
    local held = current(token_key, 2 + i)
    local owner, used_order
    if held then
      owner, used_order = string.match(held, '^([^:]+):(.+)$')
      if not owner then owner = held end
    end
    local bought = bought_now[user] or tonumber(counts[i] or '0')
    if not held then
      reply = {'INVALID_TOKEN', 'unknown or expired'}
    elseif owner ~= user then
      reply = {'INVALID_TOKEN', 'not yours'}
    elseif used_order then
      reply = {'REPLAY', used_order}
    elseif now < starts then
      reply = {'NOT_STARTED', tostring(starts)}
    elseif now >= ends then
      reply = {'ENDED', tostring(ends)}
    elseif qty > limit or bought + qty > limit then
      reply = {'LIMIT_EXCEEDED', tostring(limit - bought)}
    elseif remaining < qty then
      reply = {'SOLD_OUT', tostring(remaining)}
    else
      -- The sale. Numbers go to Redis as strings formatted with %d, or as the
      -- strings the caller sent: Redis would format a Lua number as a float.
      remaining = remaining - qty
      sold = sold + qty
      sold_now = sold_now + qty
      -- The count was read above in this same script, so the new value is
      -- exact; the counts are written once, after the batch.
      bought_now[user] = bought + qty
      local amount = price * qty
      local deadline = now + pay_timeout
      local event_id = redis.call('XADD', KEYS[4], '*',
        'activity_id', activity_id, 'user_id', user, 'quantity', qty_s,
        'amount_cents', string.format('%d', amount), 'created_at_ms', now_s,
        'pay_deadline_ms', string.format('%d', deadline), 'token', token)
      local order_id = activity_id .. '-' .. event_id
      redis.call('RPUSH', order_list_key, order_id)
      redis.call('PEXPIREAT', order_list_key, keep_until)
      -- Consume the token: it now answers retries with this order, and the
      -- user may ask for a new one for a further purchase within the limit.
      local used = user .. ':' .. order_id
      redis.call('SET', token_key, used, 'PX', ARGV[2])
      written[token_key] = used
      consumed_user_tokens[#consumed_user_tokens + 1] = user_token_key
      consumed_tokens[#consumed_tokens + 1] = token
      reply = {'OK', order_id, remaining, sold, now, deadline, amount}
    end
  end
  replies[i] = reply
end

-- The counters move once for the whole batch, by its total, and the buyers'
-- counts in one HSET.
if sold_now > 0 then
  local total = string.format('%d', sold_now)
  redis.call('DECRBY', KEYS[2], total)
  redis.call('INCRBY', KEYS[3], total)
  local pairs_ = {}
  for user, count in pairs(bought_now) do
    pairs_[#pairs_ + 1] = user
    pairs_[#pairs_ + 1] = string.format('%d', count)
  end
  redis.call('HSET', KEYS[6], unpack(pairs_))
  redis.call('PEXPIREAT', KEYS[6], keep_until)
  redis.call('DEL', unpack(consumed_user_tokens))
  redis.call('ZREM', KEYS[5], unpack(consumed_tokens))
end
return replies

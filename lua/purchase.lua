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
-- Why every per-buyer and per-token entry is a field of a hash per activity
-- (CONTRACT.md allows it): a key per buyer cost each sale a new key with its
-- own expiry (an order list, a used token) in a keyspace of millions, and a
-- redis.call each; with hashes a batch reads and writes each of them in one
-- call, the only call per sale left is the order event's XADD, and the hashes
-- have one expiry each, the activity's end plus a day, which the first write
-- sets (NX) and every change of the activity's end (the backend's PATCH)
-- moves. A count per key would keep the expiry of the end at the time of the
-- purchase, so moving the end later would let the count expire while the
-- activity still sells. Redis 7.0 has no expiry per field, so a token carries
-- its own in its value, and this script checks it.
--
-- KEYS[1] seckill:activity:{A}     hash: price_cents, limit_per_user, starts_at_ms, ends_at_ms, id
-- KEYS[2] seckill:inventory:{A}    remaining stock
-- KEYS[3] seckill:sold:{A}         sold count
-- KEYS[4] queue:seckill_order:{A}  order event stream
-- KEYS[5] seckill:live_tokens:{A}  zset of live tokens
-- KEYS[6] seckill:user_limit:{A}   hash: user U -> what U bought in A
-- KEYS[7] seckill:user_order:{A}   hash: user U -> U's order ids in A, comma-separated, oldest first
--                                  (rewritten whole at each of U's purchases: cheap while the list
--                                  holds at most U's limit plus U's released orders, a few ids)
-- KEYS[8] seckill:token:{A}        hash: token T -> "U:<expires ms>" (live, from token.lua)
--                                  or "U:<answers retries until, ms>:<order id>" (used)
-- then, in a legacy call only, one key per purchase i, at 8 + i:
--   seckill:token:{A}:T   the token as the layout before the hashes kept it: "U" (live) or
--                         "U:<order id>" (used), expiring by its own TTL
-- Why legacy calls: tokens issued or used before an upgrade to the hashes live in those keys
-- until they expire. A normal call answers {'NO_TOKEN', ''} for a token its hash lacks; the
-- backend sends just those purchases again in a legacy call, which falls back to the old key,
-- so that an old live token still sells and an old used one still replays its order. Once sold,
-- such a token lives on in the hash like any other. Normal calls pay nothing for this.
--
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
-- INVALID_TOKEN, NOT_STARTED, ENDED, LIMIT_EXCEEDED, SOLD_OUT, and NO_TOKEN in
-- a normal call (see above). A malformed call as a whole answers {{'BAD_ARG', why}}.

-- Every global read is a table lookup (KEYS and ARGV are globals under EVALSHA,
-- parameters in a function): as locals, the script costs ~0.7 usec less per sale
-- at batch 9, which is all a Redis function (FCALL) had gained over EVALSHA
-- (bench/README.md, script-cost.sh).
local KEYS, ARGV, call, unpack, tonumber = KEYS, ARGV, redis.call, unpack, tonumber
local format, match = string.format, string.match

local function posint(s)
  if type(s) ~= 'string' or not match(s, '^[1-9]%d*$') or #s > 15 then
    return nil
  end
  return tonumber(s)
end

local SHARED_KEYS, SHARED_ARGS, ARGS_EACH = 8, 2, 4
local n = (#ARGV - SHARED_ARGS) / ARGS_EACH
local legacy = #KEYS == SHARED_KEYS + n
local pay_timeout, keep_used = posint(ARGV[1]), posint(ARGV[2])
if n < 1 or n % 1 ~= 0 or (#KEYS ~= SHARED_KEYS and not legacy) or not pay_timeout or not keep_used then
  return {{'BAD_ARG', 'expected 2 + 4n arguments with a pay timeout and a retention, and 8 or 8 + n keys'}}
end

local act = call('HMGET', KEYS[1], 'price_cents', 'limit_per_user', 'starts_at_ms', 'ends_at_ms', 'id')
local price, limit, starts, ends = tonumber(act[1]), tonumber(act[2]), tonumber(act[3]), tonumber(act[4])
local activity_id = act[5]

-- Each redis.call costs about as much as a small command, so the state of the
-- whole batch is read in four: the counters, and one HMGET per hash.
local tokens, buyers = {}, {}
for i = 1, n do
  local a = SHARED_ARGS + ARGS_EACH * (i - 1)
  buyers[i], tokens[i] = ARGV[a + 1], ARGV[a + 2]
end
local counters = call('MGET', KEYS[2], KEYS[3])
local held_now = call('HMGET', KEYS[8], unpack(tokens))
local counts = call('HMGET', KEYS[6], unpack(buyers))
local old_held = legacy and call('MGET', unpack(KEYS, SHARED_KEYS + 1, SHARED_KEYS + n)) or {}
local remaining = tonumber(counters[1] or '0')
local sold = tonumber(counters[2] or '0')

-- What this batch has already written, by token and by buyer, so later
-- purchases see it.
local written, bought_now = {}, {}

-- A user's count and order list must outlive the activity, or the limit
-- could be reset by waiting: they are kept until a day after its end.
local keep_until = ends and format('%d', ends + 86400000)

local replies, used_tokens, consumed, old_consumed = {}, {}, {}, {}
local new_orders, order_buyers = {}, {}
local sold_now = 0
for i = 1, n do
  local a = SHARED_ARGS + ARGS_EACH * (i - 1)
  local user, token, qty_s, now_s = buyers[i], tokens[i], ARGV[a + 3], ARGV[a + 4]
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
    local held = written[token] or held_now[i]
    local owner, until_ms, used_order
    if held then
      owner, until_ms, used_order = match(held, '^([^:]+):(%d+):?(.*)$')
      if used_order == '' then used_order = nil end
      -- Expired (Redis cannot expire a field): as unknown as a missing one.
      if owner and now >= tonumber(until_ms) then owner = nil end
    elseif old_held[i] then
      -- The old layout's key expires by itself: while it exists, it holds.
      owner, used_order = match(old_held[i], '^([^:]+):(.+)$')
      if not owner then owner = old_held[i] end
    end
    local bought = bought_now[user] or tonumber(counts[i] or '0')
    if not held and not old_held[i] and not legacy then
      reply = {'NO_TOKEN', ''}
    elseif not owner then
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
      local event_id = call('XADD', KEYS[4], '*',
        'activity_id', activity_id, 'user_id', user, 'quantity', qty_s,
        'amount_cents', format('%d', amount), 'created_at_ms', now_s,
        'pay_deadline_ms', format('%d', deadline), 'token', token)
      local order_id = activity_id .. '-' .. event_id
      if not new_orders[user] then
        new_orders[user] = {}
        order_buyers[#order_buyers + 1] = user
      end
      table.insert(new_orders[user], order_id)
      -- Consume the token: it now answers retries with this order, and the
      -- user may ask for a new one for a further purchase within the limit.
      local used = user .. ':' .. format('%d', now + keep_used) .. ':' .. order_id
      written[token] = used
      used_tokens[#used_tokens + 1] = token
      used_tokens[#used_tokens + 1] = used
      consumed[#consumed + 1] = token
      if not held then old_consumed[#old_consumed + 1] = KEYS[SHARED_KEYS + i] end
      reply = {'OK', order_id, remaining, sold, now, deadline, amount}
    end
  end
  replies[i] = reply
end

-- Everything else moves once for the whole batch: the counters by its total,
-- and each hash in one write.
if sold_now > 0 then
  local total = format('%d', sold_now)
  call('DECRBY', KEYS[2], total)
  call('INCRBY', KEYS[3], total)
  local counts_now, lists = {}, {}
  for user, count in pairs(bought_now) do
    counts_now[#counts_now + 1] = user
    counts_now[#counts_now + 1] = format('%d', count)
  end
  local before = call('HMGET', KEYS[7], unpack(order_buyers))
  for j, user in ipairs(order_buyers) do
    local list = table.concat(new_orders[user], ',')
    if before[j] then list = before[j] .. ',' .. list end
    lists[#lists + 1] = user
    lists[#lists + 1] = list
  end
  call('HSET', KEYS[6], unpack(counts_now))
  call('HSET', KEYS[7], unpack(lists))
  call('HSET', KEYS[8], unpack(used_tokens))
  -- NX: a no-op (and nothing for the AOF or the replicas) once the hash has its expiry.
  -- The token hash has one from token.lua unless all of this call's tokens were old keys.
  call('PEXPIREAT', KEYS[6], keep_until, 'NX')
  call('PEXPIREAT', KEYS[7], keep_until, 'NX')
  if legacy then call('PEXPIREAT', KEYS[8], keep_until, 'NX') end
  call('ZREM', KEYS[5], unpack(consumed))
  if #old_consumed > 0 then call('DEL', unpack(old_consumed)) end
end
return replies

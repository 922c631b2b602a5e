-- publish_rules.lua: puts a version of the edge rules in force, unless a newer one already is.
--
-- Why: the order DB keeps the rules with their history, but the edge's state
-- must not depend on the DB (a sale needs only Redis); so the version in force
-- is mirrored here. Several backends publish, each whatever it last saved or
-- read, in any order: only a newer version may replace the mirror.
--
-- KEYS[1] seckill:edge:rules   hash: version, rules_json, created_at_ms
-- ARGV[1] version   ARGV[2] rules (JSON)   ARGV[3] created at (ms)
--
-- Returns 1 when it published, 0 when the mirror already holds this or a newer version.

local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if tonumber(ARGV[1]) <= current then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'rules_json', ARGV[2], 'created_at_ms', ARGV[3])
return 1

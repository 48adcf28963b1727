package store

import "github.com/redis/go-redis/v9"

// The Lua scripts of the Store. KEYS are always the eight keys of one import
// in the order of Store.keys (meta, spec, kids, parent, state, ids, failed,
// lock), so every script touches one hash slot. States: w waiting on the
// parent, q queued, c created, f failed; the meta hash counts them in n_w,
// n_q, n_c, n_f. Negative integer answers: -1 no such import, -2 no such
// item.

// luaCommon refreshes the TTL of the seven state keys (not the lock) and
// moves an item between counters.
const luaCommon = `
local function touch(ttl)
  for i = 1, 7 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
local function move(key, from, to, reason)
  redis.call('HSET', KEYS[5], key, to)
  if from then redis.call('HINCRBY', KEYS[1], 'n_' .. from, -1) end
  redis.call('HINCRBY', KEYS[1], 'n_' .. to, 1)
  if from == 'f' then redis.call('HDEL', KEYS[7], key) end
  if to == 'f' then redis.call('HSET', KEYS[7], key, reason) end
end
`

// finishScript publishes a created import by writing its meta hash, if the
// caller still holds the create lock and nobody published first.
// ARGV: ttl, token, portal, digest, total, created_at, queued, waiting.
var finishScript = redis.NewScript(luaCommon + `
if redis.call('GET', KEYS[8]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[8])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'portal', ARGV[3], 'digest', ARGV[4], 'total', ARGV[5],
  'created_at', ARGV[6], 'n_q', ARGV[7], 'n_w', ARGV[8], 'n_c', 0, 'n_f', 0)
touch(ARGV[1])
return 1
`)

// completeScript records a created item and returns {recorded ID,
// child key, child spec, ...} for the children still waiting.
// ARGV: ttl, key, portal ID.
var completeScript = redis.NewScript(luaCommon + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local key = ARGV[2]
local st = redis.call('HGET', KEYS[5], key)
if not st then return {-2} end
local id = redis.call('HGET', KEYS[6], key)
if not id then
  id = ARGV[3]
  redis.call('HSET', KEYS[6], key, id)
end
if st ~= 'c' then move(key, st, 'c') end
local out = {id}
local kids = redis.call('HGET', KEYS[3], key)
if kids then
  for _, k in ipairs(cjson.decode(kids)) do
    if redis.call('HGET', KEYS[5], k) == 'w' then
      out[#out + 1] = k
      out[#out + 1] = redis.call('HGET', KEYS[2], k)
    end
  end
end
touch(ARGV[1])
return out
`)

// markQueuedScript moves waiting items to queued. ARGV: ttl, key...
var markQueuedScript = redis.NewScript(luaCommon + `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[5], ARGV[i]) == 'w' then
    move(ARGV[i], 'w', 'q')
    n = n + 1
  end
end
touch(ARGV[1])
return n
`)

// failScript fails an item and its not-yet-created subtree, walking the
// children lists with an explicit stack. ARGV: ttl, key, reason.
var failScript = redis.NewScript(luaCommon + `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local key = ARGV[2]
local st = redis.call('HGET', KEYS[5], key)
if not st then return -2 end
if st == 'c' or st == 'f' then return 0 end
move(key, st, 'f', ARGV[3])
local n = 1
local sub = 'parent ' .. key .. ' failed: ' .. ARGV[3]
local stack = {key}
while #stack > 0 do
  local p = table.remove(stack)
  local kids = redis.call('HGET', KEYS[3], p)
  if kids then
    for _, k in ipairs(cjson.decode(kids)) do
      local s = redis.call('HGET', KEYS[5], k)
      if s == 'w' or s == 'q' then
        move(k, s, 'f', sub)
        n = n + 1
        stack[#stack + 1] = k
      end
    end
  end
end
touch(ARGV[1])
return n
`)

// releasableScript lists {key, spec, parent ID or ""} of every queued item
// and of every waiting item whose parent is created. Read only.
var releasableScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local all = redis.call('HGETALL', KEYS[5])
local out = {}
for i = 1, #all, 2 do
  local k, s = all[i], all[i + 1]
  if s == 'q' or s == 'w' then
    local p = redis.call('HGET', KEYS[4], k)
    local pid = ''
    if p then pid = redis.call('HGET', KEYS[6], p) or '' end
    if (not p) or pid ~= '' then
      out[#out + 1] = k
      out[#out + 1] = redis.call('HGET', KEYS[2], k)
      out[#out + 1] = pid
    end
  end
end
return out
`)

// resetFailedScript gives failed items another chance and returns their
// keys. ARGV: ttl.
var resetFailedScript = redis.NewScript(luaCommon + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local failed = redis.call('HKEYS', KEYS[7])
local reset = {}
for _, k in ipairs(failed) do
  if redis.call('HGET', KEYS[5], k) == 'f' then
    move(k, 'f', 'w')
    reset[#reset + 1] = k
  end
end
redis.call('DEL', KEYS[7])
for _, k in ipairs(reset) do
  local p = redis.call('HGET', KEYS[4], k)
  if (not p) or redis.call('HGET', KEYS[5], p) == 'c' then move(k, 'w', 'q') end
end
touch(ARGV[1])
return reset
`)

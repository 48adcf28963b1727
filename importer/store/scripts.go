package store

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts of the Store. Every script gets the eight keys of one
// import as KEYS, in the order of keys.Import.List, so that every script
// touches one hash slot:
//
//	KEYS[1] -> PREFIX:imp:{ID}:meta    hash: portal, digest, total, created_at, one counter per state
//	KEYS[2] -> PREFIX:imp:{ID}:spec    hash: key -> compact JSON spec of the item
//	KEYS[3] -> PREFIX:imp:{ID}:kids    hash: parent key -> JSON list of child keys
//	KEYS[4] -> PREFIX:imp:{ID}:parent  hash: key -> parent key (items with a parent in the file)
//	KEYS[5] -> PREFIX:imp:{ID}:state   hash: key -> state letter
//	KEYS[6] -> PREFIX:imp:{ID}:ids     hash: key -> portal ID
//	KEYS[7] -> PREFIX:imp:{ID}:failed  hash: key -> reason
//	KEYS[8] -> PREFIX:imp:{ID}:lock    string: token of the Create in progress
//	KEYS[9] -> PREFIX:imp:{ID}:marks   hash: "a:KEY" (adopted), "u:KEY" (updated) -> 1
//
// The answers and state letters that Go and Lua share are Go constants,
// declared to Lua by luaPrelude at the top of every script: the scripts
// name them (NO_IMPORT, WAITING, ...) and never spell their values.

// Negative answers of the scripts; scriptErr turns them into errors.
const (
	codeNoImport = -1 // Lua NO_IMPORT: no meta hash, so no such import
	codeNoItem   = -2 // Lua NO_ITEM: the import has no item with that key
)

// state is an item's letter in the state hash (KEYS[5]).
type state string

// The states of an item. Every item is in exactly one; the meta hash counts
// the items of each state in its counter field.
const (
	stateWaiting state = "w" // Lua WAITING: waits for its parent's ID
	stateQueued  state = "q" // Lua QUEUED: its task is queued (or about to be)
	stateCreated state = "c" // Lua CREATED: the portal holds it; its ID is in KEYS[6]
	stateFailed  state = "f" // Lua FAILED: failed for good; the reason is in KEYS[7]
)

// counterPrefix (Lua COUNTER) + a state letter is the meta hash field that
// counts the items in that state: n_w, n_q, n_c, n_f.
const counterPrefix = "n_"

// Meta hash fields counting the CREATED items that were adopted (they
// existed in the portal) and the items the import updated (Lua
// ADOPTED_COUNT, UPDATED_COUNT).
const (
	counterAdopted = "n_adopted"
	counterUpdated = "n_updated"
)

// counter is the meta hash field counting the items in state st.
func (st state) counter() string { return counterPrefix + string(st) }

// luaConstants are the Go constants the scripts use, by their Lua names.
var luaConstants = []struct {
	name  string
	value any
}{
	{"NO_IMPORT", codeNoImport},
	{"NO_ITEM", codeNoItem},
	{"WAITING", stateWaiting},
	{"QUEUED", stateQueued},
	{"CREATED", stateCreated},
	{"FAILED", stateFailed},
	{"COUNTER", counterPrefix},
	{"ADOPTED_COUNT", counterAdopted},
	{"UPDATED_COUNT", counterUpdated},
}

// luaPrelude declares luaConstants as Lua locals ("local NO_IMPORT = -1"):
// generated from the Go constants, so the two cannot drift.
var luaPrelude = func() string {
	var b strings.Builder
	for _, c := range luaConstants {
		switch v := c.value.(type) {
		case int:
			fmt.Fprintf(&b, "local %s = %d\n", c.name, v)
		case state:
			fmt.Fprintf(&b, "local %s = %s\n", c.name, luaString(string(v)))
		case string:
			fmt.Fprintf(&b, "local %s = %s\n", c.name, luaString(v))
		default:
			panic(fmt.Sprintf("store: Lua constant %s has unsupported type %T", c.name, v))
		}
	}
	return b.String()
}()

// luaString quotes s as a Lua string literal; the constants are plain ASCII
// letters and '_', which need no escapes.
func luaString(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r != '_' && (r < 'a' || r > 'z') }) {
		panic(fmt.Sprintf("store: Lua string constant %q needs escaping", s))
	}
	return "'" + s + "'"
}

// newScript is a script whose source is luaPrelude, luaCommon and body.
func newScript(body string) *redis.Script {
	return redis.NewScript(luaPrelude + luaCommon + body)
}

// luaCommon holds the helpers of the scripts. touch refreshes the TTL of the
// state keys KEYS[1..7] and KEYS[9] (not the lock); move changes an item's state
// in KEYS[5] and its counters in KEYS[1], and keeps KEYS[7] (the failure
// reasons) in step.
const luaCommon = `
local function touch(ttl)
  for i = 1, 7 do redis.call('PEXPIRE', KEYS[i], ttl) end
  if KEYS[9] then redis.call('PEXPIRE', KEYS[9], ttl) end
end
local function move(key, from, to, reason)
  redis.call('HSET', KEYS[5], key, to)
  if from then redis.call('HINCRBY', KEYS[1], COUNTER .. from, -1) end
  redis.call('HINCRBY', KEYS[1], COUNTER .. to, 1)
  if from == FAILED then redis.call('HDEL', KEYS[7], key) end
  if to == FAILED then redis.call('HSET', KEYS[7], key, reason) end
end
`

// finishScript publishes a created import by writing its meta hash, if the
// caller still holds the create lock and nobody published first.
//
// KEYS[1] -> meta (written)
// KEYS[1..7] -> TTL refreshed
// KEYS[8] -> lock (compared with ARGV[2], then deleted)
// ARGV[1] -> TTL in milliseconds
// ARGV[2] -> the caller's lock token
// ARGV[3] -> portal
// ARGV[4] -> digest of the file
// ARGV[5] -> total number of items
// ARGV[6] -> created_at, unix seconds
// ARGV[7] -> number of items queued
// ARGV[8] -> number of items waiting
//
// Output:
// 1 when the meta hash was written; 0 when the lock was lost or the import
// exists already.
var finishScript = newScript(finishLua)

const finishLua = `
if redis.call('GET', KEYS[8]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[8])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'portal', ARGV[3], 'digest', ARGV[4], 'total', ARGV[5],
  'created_at', ARGV[6], COUNTER .. QUEUED, ARGV[7], COUNTER .. WAITING, ARGV[8],
  COUNTER .. CREATED, 0, COUNTER .. FAILED, 0)
touch(ARGV[1])
return 1
`

// completeScript records a created item and returns its children that still
// wait, to be released under the recorded ID. Only the first ID recorded
// for an item counts.
//
// KEYS[1] -> meta (existence, counters)
// KEYS[2] -> spec (read: the children's specs)
// KEYS[3] -> kids (read: the item's children)
// KEYS[5] -> state (item to CREATED; children read)
// KEYS[6] -> ids (the item's ID, written once)
// KEYS[7] -> failed (the reason dropped when a failed item is completed)
// KEYS[1..7] -> TTL refreshed
// ARGV[1] -> TTL in milliseconds
// ARGV[2] -> item key
// ARGV[3] -> portal ID of the created object
//
// Output:
// {NO_IMPORT} or {NO_ITEM}; otherwise {recorded ID, child key, child spec,
// child key, child spec, ...} for the children still WAITING.
var completeScript = newScript(completeLua)

const completeLua = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {NO_IMPORT} end
local key = ARGV[2]
local st = redis.call('HGET', KEYS[5], key)
if not st then return {NO_ITEM} end
local id = redis.call('HGET', KEYS[6], key)
if not id then
  id = ARGV[3]
  redis.call('HSET', KEYS[6], key, id)
end
if st ~= CREATED then move(key, st, CREATED) end
local out = {id}
local kids = redis.call('HGET', KEYS[3], key)
if kids then
  for _, k in ipairs(cjson.decode(kids)) do
    if redis.call('HGET', KEYS[5], k) == WAITING then
      out[#out + 1] = k
      out[#out + 1] = redis.call('HGET', KEYS[2], k)
    end
  end
end
touch(ARGV[1])
return out
`

// markQueuedScript moves items from WAITING to QUEUED once their tasks are
// enqueued; items in any other state are left alone.
//
// KEYS[1] -> meta (existence, counters)
// KEYS[5] -> state
// KEYS[1..7] -> TTL refreshed
// ARGV[1] -> TTL in milliseconds
// ARGV[2..] -> item keys
//
// Output:
// NO_IMPORT, or how many items moved.
var markQueuedScript = newScript(markQueuedLua)

const markQueuedLua = `
if redis.call('EXISTS', KEYS[1]) == 0 then return NO_IMPORT end
local n = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[5], ARGV[i]) == WAITING then
    move(ARGV[i], WAITING, QUEUED)
    n = n + 1
  end
end
touch(ARGV[1])
return n
`

// failScript fails an item and its subtree not yet created, walking the
// children lists with an explicit stack (no recursion, any depth). A
// created or already failed item is left alone.
//
// KEYS[1] -> meta (existence, counters)
// KEYS[3] -> kids (read)
// KEYS[5] -> state
// KEYS[7] -> failed (the reasons)
// KEYS[1..7] -> TTL refreshed
// ARGV[1] -> TTL in milliseconds
// ARGV[2] -> item key
// ARGV[3] -> reason
//
// Output:
// NO_IMPORT or NO_ITEM; otherwise how many items changed to FAILED (0 when
// the item was created or failed before).
var failScript = newScript(failLua)

const failLua = `
if redis.call('EXISTS', KEYS[1]) == 0 then return NO_IMPORT end
local key = ARGV[2]
local st = redis.call('HGET', KEYS[5], key)
if not st then return NO_ITEM end
if st == CREATED or st == FAILED then return 0 end
move(key, st, FAILED, ARGV[3])
local n = 1
local sub = 'parent ' .. key .. ' failed: ' .. ARGV[3]
local stack = {key}
while #stack > 0 do
  local p = table.remove(stack)
  local kids = redis.call('HGET', KEYS[3], p)
  if kids then
    for _, k in ipairs(cjson.decode(kids)) do
      local s = redis.call('HGET', KEYS[5], k)
      if s == WAITING or s == QUEUED then
        move(k, s, FAILED, sub)
        n = n + 1
        stack[#stack + 1] = k
      end
    end
  end
end
touch(ARGV[1])
return n
`

// releasableScript lists every QUEUED item and every WAITING item whose
// parent is created (children a crashed release left behind). Read only.
//
// KEYS[1] -> meta (existence)
// KEYS[2] -> spec (read)
// KEYS[4] -> parent (read)
// KEYS[5] -> state (read)
// KEYS[6] -> ids (read: the parents' IDs)
//
// Output:
// {NO_IMPORT}, or {key, spec, parent ID or "", key, spec, parent ID, ...}.
var releasableScript = newScript(releasableLua)

const releasableLua = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {NO_IMPORT} end
local all = redis.call('HGETALL', KEYS[5])
local out = {}
for i = 1, #all, 2 do
  local k, s = all[i], all[i + 1]
  if s == QUEUED or s == WAITING then
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
`

// resetFailedScript gives every FAILED item another chance: it forgets the
// failures, makes the items whose parent is created (or that have none)
// QUEUED and the others WAITING.
//
// KEYS[1] -> meta (existence, counters)
// KEYS[4] -> parent (read)
// KEYS[5] -> state
// KEYS[7] -> failed (deleted)
// KEYS[1..7] -> TTL refreshed
// ARGV[1] -> TTL in milliseconds
//
// Output:
// {NO_IMPORT}, or the keys that were reset.
var resetFailedScript = newScript(resetFailedLua)

const resetFailedLua = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {NO_IMPORT} end
local failed = redis.call('HKEYS', KEYS[7])
local reset = {}
for _, k in ipairs(failed) do
  if redis.call('HGET', KEYS[5], k) == FAILED then
    move(k, FAILED, WAITING)
    reset[#reset + 1] = k
  end
end
redis.call('DEL', KEYS[7])
for _, k in ipairs(reset) do
  local p = redis.call('HGET', KEYS[4], k)
  if (not p) or redis.call('HGET', KEYS[5], p) == CREATED then move(k, WAITING, QUEUED) end
end
touch(ARGV[1])
return reset
`

// adoptScript records items the portal already holds (found by the
// reconcile step) as CREATED with the portal's ID, marked adopted. Items
// CREATED already are left alone. Their children are not returned: the
// caller releases what is releasable afterwards.
//
// KEYS[1] -> meta (existence, counters)
// KEYS[5] -> state (items to CREATED)
// KEYS[6] -> ids (written)
// KEYS[7] -> failed (a failed item's reason dropped)
// KEYS[9] -> marks ("a:KEY" set)
// KEYS[1..7], KEYS[9] -> TTL refreshed
// ARGV[1] -> TTL in milliseconds
// ARGV[2k], ARGV[2k+1] -> item key, portal ID
//
// Output: NO_IMPORT, or the number of items adopted.
var adoptScript = newScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return NO_IMPORT end
local n = 0
for i = 2, #ARGV, 2 do
  local key = ARGV[i]
  local st = redis.call('HGET', KEYS[5], key)
  if st and st ~= CREATED then
    redis.call('HSET', KEYS[6], key, ARGV[i + 1])
    move(key, st, CREATED)
    redis.call('HSET', KEYS[9], 'a:' .. key, 1)
    redis.call('HINCRBY', KEYS[1], ADOPTED_COUNT, 1)
    n = n + 1
  end
end
touch(ARGV[1])
return n
`)

// markUpdatedScript records items whose fields the import updated.
//
// KEYS[1] -> meta (existence, counter)
// KEYS[9] -> marks ("u:KEY" set)
// KEYS[1..7], KEYS[9] -> TTL refreshed
// ARGV[1] -> TTL in milliseconds
// ARGV[2..] -> item keys
//
// Output: NO_IMPORT, or the number of items newly marked.
var markUpdatedScript = newScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return NO_IMPORT end
local n = 0
for i = 2, #ARGV do
  if redis.call('HSETNX', KEYS[9], 'u:' .. ARGV[i], 1) == 1 then
    redis.call('HINCRBY', KEYS[1], UPDATED_COUNT, 1)
    n = n + 1
  end
end
touch(ARGV[1])
return n
`)

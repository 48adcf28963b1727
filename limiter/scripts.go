package limiter

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/claim"
)

// All scripts take the current time in microseconds as ARGV[1]; 0 means "use
// the Redis server's clock" (TIME), so that the clocks of worker hosts do not
// matter. Absolute times are stored as integer microseconds formatted with
// %.0f (Lua's tostring would round them to 14 significant digits). TTLs are
// set relative to the script's now (PEXPIRE, not PEXPIREAT) so that an injected
// clock far from the server's clock still yields sane expiries.
//
// Each script's doc comment lists its KEYS and ARGV and its answer, in the
// style of asynq's scripts; the keys are named in internal/keys. Codes a
// script answers with are Go constants defined in the Lua source as locals
// (luaConsts), so that the Go that reads them and the Lua that returns them
// use the same names.
//
// The bucket hash (KEYS[1] of grant and throttle) holds the GCRA state:
//
//	tat  theoretical arrival time (µs): the bucket holds (tat-now)*rate requests
//	rate effective rate (req/s), between MinRate and Rate
//	n    grants since the last rate change (for the additive-increase step)
//	dec  time of the last decrease (µs), to count 503s within Cooldown once
//	cend end of the latest 503 cooldown (µs), for people to read (State)
//
// burst is the shared burst ([Config.SharedBurst]), not the portal's Burst.
// A grant at now reserves slot max(tat, now) + T - burst*T (T = 1/rate) and
// moves tat by T. When the rate changes the time of the last reserved slot
// (tat - burst*T) is kept, so requests already queued keep their slots and the
// next one follows at the new spacing.

const luaPrelude = `
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function fmt(x) return string.format('%.0f', x) end
`

// The report hash of a method (KEYS[2] of block, KEYS[3] of grant) holds
// the portal's last operating report and the fleet's calls in flight:
//
//	operating    µs the method used in the window, as last reported
//	reset_at     µs when the oldest counted execution leaves the window
//	observed_at  µs of the report
//	cost         µs one call is billed (the reports' processing: the
//	             largest seen, decaying by 10% of the gap per report)
//	fl, fl_at    calls granted since and not yet reported, and the time of
//	             the last such grant; fl counts as 0 once fl_at is older
//	             than the in-flight TTL (a call that ended without a report)
//
// It exists only while the method is close enough to its budget for the
// workers to report every answer (see [Limiter.Tracked]).

// Codes of grantScript's answer (its first value). The script's Lua names
// them too (GRANTED, BLOCKED, DELAYED, INFLIGHT: see grantCodes), from these
// constants, so that the two cannot drift.
const (
	grantGranted  = 0 // a slot is reserved
	grantBlocked  = 1 // the method is blocked
	grantDelayed  = 2 // not reserved: the slot is further than allowed
	grantInflight = 3 // not reserved: the calls in flight may use up the budget
	// not reserved: the claim to take was not fresh (its state in the
	// answer's slot, its latest send time in the value)
	grantClaimed = 4
	// not reserved: claims to check are not the attempt's (their 1-based
	// indexes in the answer's last element)
	grantSuperseded = 5
	// not reserved: the portal is unavailable (see unavailable.go)
	grantUnavailable = 6
)

// grantCodes defines grantScript's answer codes as Lua locals.
var grantCodes = luaConsts(
	luaConst{"GRANTED", grantGranted},
	luaConst{"BLOCKED", grantBlocked},
	luaConst{"DELAYED", grantDelayed},
	luaConst{"INFLIGHT", grantInflight},
	luaConst{"CLAIMED", grantClaimed},
	luaConst{"SUPERSEDED", grantSuperseded},
	luaConst{"UNAVAILABLE", grantUnavailable},
	luaConst{"CLAIM_MODE_TAKE", claimModeTake},
	luaConst{"CLAIM_MODE_CHECK", claimModeCheck},
)

// The request history (keys.Requests) is a hash used as a ring of
// requestRing seconds: the grant script counts each granted request in the
// field (slot second % requestRing), whose value is second×requestScale +
// count; a value of another second is an old turn of the ring and starts
// again from zero. So the hash never holds more than requestRing fields,
// whatever the load, and costs the grant no round trip. It expires
// requestRing seconds after the last grant.
const (
	requestRing  = 900
	requestScale = 1000000
)

// requestConsts defines the request history's constants as Lua locals.
var requestConsts = luaConsts(luaConst{"REQ_RING", requestRing}, luaConst{"REQ_SCALE", requestScale})

// luaConst is a Go constant a script shares with its caller.
type luaConst struct {
	name  string
	value int
}

// luaConsts returns Lua that defines each constant as a local of the
// script: "local NAME = value", one a line.
func luaConsts(cs ...luaConst) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString("local " + c.name + " = " + strconv.Itoa(c.value) + "\n")
	}
	return b.String()
}

// grantScript reserves one slot of a method in a portal's shared bucket,
// unless the method is blocked, the slot is further than the caller may
// wait, or the method's calls in flight may use up its operating budget.
//
// Input:
// KEYS[1] -> PREFIX:{PORTAL}:bucket (keys.Bucket)
// KEYS[2] -> PREFIX:{PORTAL}:block:METHOD (keys.Block)
// KEYS[3] -> PREFIX:{PORTAL}:op:METHOD (keys.Report)
// KEYS[4] -> PREFIX:{PORTAL}:unavailable (keys.Unavailable)
// KEYS[5] -> PREFIX:{PORTAL}:reqs (keys.Requests): a granted request is
// counted in its slot's second (see requestRing)
// KEYS[6..] -> optional: object claims (internal/claim) to take or check
// with the grant, keys with the {PORTAL} tag (keys.Space.Object)
// --
// ARGV[1] -> now, µs (0: the Redis server's clock)
// ARGV[2] -> configured rate, requests/s
// ARGV[3] -> shared burst
// ARGV[4] -> minimum rate, requests/s
// ARGV[5] -> longest delay the caller accepts, µs (<0: no limit)
// ARGV[6] -> increase step: grants without a 503 before the rate climbs
// ARGV[7] -> idle TTL of the bucket, ms
// ARGV[8] -> operating threshold, µs
// ARGV[9] -> in-flight TTL, µs
// ARGV[10] -> claim mode: 0 none, CLAIM_MODE_TAKE (KEYS[6] only),
// CLAIM_MODE_CHECK (every claim)
// ARGV[11] -> claim TTL, ms
// ARGV[12] -> 1: a probe of an unavailable portal (granted regardless); 0:
// refused while the portal is unavailable
// ARGV[13] -> first probe delay, µs
// ARGV[14] -> longest probe delay, µs
// ARGV[15..] -> owner and token of each claim, in KEYS order
//
// Output: {code, value, rate, slot, tracked, extra}, rate as a string:
// {GRANTED, delay µs, rate, slot µs, tracked, 0}: granted; slot = now +
// delay is the absolute time of the slot (compared with a cooldown's end by
// waiters); a claim taken or checked records the slot as its send time
// {BLOCKED, until µs, rate, 0, 0, 0}: the method is blocked until until
// {DELAYED, delay µs, rate, 0, tracked, 0}: not reserved, delay > ARGV[5]
// {INFLIGHT, wait µs, rate, 0, 1, 0}: not reserved, the calls in flight may
// use up the method's budget (or the window moved since the last report and
// one of them is measuring it): ask again after wait
// {CLAIMED, since µs, rate, claim state, tracked, 0}: not reserved, the
// claim to take was not fresh (taken over if Resumed or Look)
// {SUPERSEDED, 0, rate, 0, tracked, {indexes}}: not reserved, the claims at
// those 1-based indexes are not the attempt's any more
// {UNAVAILABLE, next probe µs, rate, probe, 0, {code, description}}: not
// reserved, the portal is unavailable; probe is 1 when this caller is the
// one to probe it now (the next probe is then pushed back, doubling up to
// ARGV[14])
// tracked is 1 when the method has a report hash.
var grantScript = redis.NewScript(grantLua)

// grantLua is grantScript's source.
var grantLua = luaPrelude + grantCodes + requestConsts + claim.Lua + `
local cfg = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local minr = tonumber(ARGV[4])
local maxd = tonumber(ARGV[5])
local step = tonumber(ARGV[6])
local idle = tonumber(ARGV[7])
local threshold = tonumber(ARGV[8])
local flttl = tonumber(ARGV[9])

if ARGV[12] == '0' then
  local u = redis.call('HMGET', KEYS[4], 'code', 'next', 'probes', 'desc')
  if u[1] then
    local nxt = tonumber(u[2] or '') or 0
    local probe = 0
    if nxt <= now then
      local n = tonumber(u[3] or '') or 0
      local d = tonumber(ARGV[13]) * 2 ^ (n + 1)
      if d > tonumber(ARGV[14]) then d = tonumber(ARGV[14]) end
      nxt = now + d
      redis.call('HSET', KEYS[4], 'next', fmt(nxt), 'probes', n + 1)
      probe = 1
    end
    return {UNAVAILABLE, nxt, tostring(cfg), probe, 0, {u[1], u[4] or ''}}
  end
end

local blocked = redis.call('GET', KEYS[2])
if blocked then
  local untl = tonumber(blocked)
  if untl > now then return {BLOCKED, untl, tostring(cfg), 0, 0, 0} end
end

local tracked = 0
local fl = 0
local rep = redis.call('HMGET', KEYS[3], 'operating', 'reset_at', 'cost', 'fl', 'fl_at')
local cost = tonumber(rep[3] or '') or 0
if cost > 0 then
  tracked = 1
  fl = tonumber(rep[4] or '') or 0
  if (tonumber(rep[5] or '') or 0) + flttl < now then fl = 0 end
  if fl > 0 then
    local op = tonumber(rep[1] or '') or 0
    local reset = tonumber(rep[2] or '') or 0
    if (reset > 0 and reset <= now) or op + fl * cost >= threshold then
      local w = cost
      if w < 50000 then w = 50000 end
      if w > 1000000 then w = 1000000 end
      return {INFLIGHT, math.ceil(w), tostring(cfg), 0, 1, 0}
    end
  end
end

local st = redis.call('HMGET', KEYS[1], 'tat', 'rate', 'n')
local tat = tonumber(st[1] or '') or now
local r = tonumber(st[2] or '') or cfg
if r > cfg then r = cfg end
if r < minr then r = minr end
local n = tonumber(st[3] or '') or 0
if tat < now then tat = now end

local T = 1e6 / r
local slot = tat + T - burst * T
local delay = slot - now
if delay < 0 then delay = 0 end
if maxd >= 0 and delay > maxd then
  return {DELAYED, math.ceil(delay), tostring(r), 0, tracked, 0}
end
local mode = tonumber(ARGV[10])
if mode == CLAIM_MODE_TAKE then
  local st, at = claim_take(KEYS[6], ARGV[15], ARGV[16], now + delay, tonumber(ARGV[11]))
  if st ~= CLAIM_FRESH then return {CLAIMED, at, tostring(r), st, tracked, 0} end
elseif mode == CLAIM_MODE_CHECK then
  local bad = {}
  for i = 6, #KEYS do
    local j = 15 + 2 * (i - 6)
    if claim_check(KEYS[i], ARGV[j], ARGV[j + 1], now + delay, tonumber(ARGV[11])) ~= CLAIM_OURS then
      bad[#bad + 1] = i - 5
    end
  end
  if #bad > 0 then return {SUPERSEDED, 0, tostring(r), 0, tracked, bad} end
end
tat = tat + T
if tracked == 1 then
  redis.call('HSET', KEYS[3], 'fl', fl + 1, 'fl_at', fmt(now))
end

if r < cfg then
  n = n + 1
  if n >= step then
    local nr = r * 1.1
    if nr > cfg then nr = cfg end
    tat = (tat - burst * T) + burst * 1e6 / nr
    r = nr
    n = 0
  end
else
  n = 0
end
redis.call('HSET', KEYS[1], 'tat', fmt(tat), 'rate', string.format('%.17g', r), 'n', n)
redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + idle)
local sec = math.floor((now + delay) / 1e6)
local ring = sec % REQ_RING
local cnt = tonumber(redis.call('HGET', KEYS[5], ring) or '') or 0
if math.floor(cnt / REQ_SCALE) ~= sec then cnt = sec * REQ_SCALE end
redis.call('HSET', KEYS[5], ring, fmt(cnt + 1))
redis.call('PEXPIRE', KEYS[5], REQ_RING * 1000)
return {GRANTED, math.ceil(delay), tostring(r), now + math.ceil(delay), tracked, 0}
`

// throttleScript records a 503: it pushes tat so that the bucket is full at
// now+cooldown and multiplies the rate by 0.8 (floor minRate) unless it was
// already decreased within the last cooldown. It PUBLISHes the cooldown's end
// (µs, decimal) on the pause channel in the same atomic step, so that waiters
// in every process learn of it without a round trip of their own. (The
// channel is an argument, not a key: PUBLISH reaches every node of a Cluster.)
//
// Input:
// KEYS[1] -> PREFIX:{PORTAL}:bucket (keys.Bucket)
// --
// ARGV[1] -> now, µs (0: the Redis server's clock)
// ARGV[2] -> configured rate, requests/s
// ARGV[3] -> shared burst
// ARGV[4] -> minimum rate, requests/s
// ARGV[5] -> cooldown, µs
// ARGV[6] -> idle TTL of the bucket, ms
// ARGV[7] -> pause channel, PREFIX:{PORTAL}:throttled (keys.Throttled)
//
// Output: {rate, decreased, cooldown end µs}: the new rate as a string;
// decreased is 1 if this call decreased it, else 0.
var throttleScript = redis.NewScript(luaPrelude + `
local cfg = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local minr = tonumber(ARGV[4])
local cool = tonumber(ARGV[5])
local idle = tonumber(ARGV[6])
local chan = ARGV[7]

local st = redis.call('HMGET', KEYS[1], 'tat', 'rate', 'dec', 'cend')
local r = tonumber(st[2] or '') or cfg
if r > cfg then r = cfg end
if r < minr then r = minr end
local tat = tonumber(st[1] or '') or now
local dec = tonumber(st[3] or '')

local last = tat - burst * 1e6 / r
local nr = r
local decreased = 0
if dec == nil or now >= dec + cool or now < dec then
  nr = r * 0.8
  if nr < minr then nr = minr end
  dec = now
  decreased = 1
end
local cend = now + cool
if last < cend then last = cend end
tat = last + burst * 1e6 / nr
local kept = tonumber(st[4] or '') or 0
if kept < cend then kept = cend end
redis.call('HSET', KEYS[1], 'tat', fmt(tat), 'rate', string.format('%.17g', nr), 'n', 0, 'dec', fmt(dec),
  'cend', fmt(kept))
redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + idle)
redis.call('PUBLISH', chan, fmt(cend))
return {tostring(nr), decreased, math.ceil(cend)}
`)

// blockScript records an operating report or a 429. With a report
// (ARGV[3] >= 0) it is stored in KEYS[2] (one call fewer in flight, the cost
// estimate updated); the method is blocked when operating >= threshold, until
// resetAt if that is in the future, else for the fallback duration. Without
// a report until (or now+fallback if until <= now) is applied. A block is
// only ever extended, and never reaches further than the report TTL (the
// operating window) from now, whatever reset time an answer claimed.
//
// Input:
// KEYS[1] -> PREFIX:{PORTAL}:block:METHOD (keys.Block)
// KEYS[2] -> PREFIX:{PORTAL}:op:METHOD (keys.Report)
// --
// ARGV[1] -> now, µs (0: the Redis server's clock)
// ARGV[2] -> until, µs (0: unknown — the stored report's reset time if
// ahead, else now+fallback)
// ARGV[3] -> reported operating time, µs (<0: no report)
// ARGV[4] -> reported reset time, µs (0: unknown)
// ARGV[5] -> operating threshold, µs
// ARGV[6] -> fallback block, µs
// ARGV[7] -> report TTL, ms
// ARGV[8] -> processing, µs: the reported call's billed time (0: unknown)
//
// Output: the block's end in µs after the call (0: not blocked).
var blockScript = redis.NewScript(luaPrelude + `
local untl = tonumber(ARGV[2])
local op = tonumber(ARGV[3])
local reset = tonumber(ARGV[4])
local threshold = tonumber(ARGV[5])
local fallback = tonumber(ARGV[6])
local rttl = tonumber(ARGV[7])
local proc = tonumber(ARGV[8])
-- No block outlasts the operating window from now: a reset time further
-- ahead (a corrupt or hostile answer) would stop the method fleet-wide.
local horizon = now + rttl * 1000
if reset > horizon then reset = horizon end
if untl > horizon then untl = horizon end

if op >= 0 then
  local st = redis.call('HMGET', KEYS[2], 'cost', 'fl', 'operating', 'reset_at')
  local cost = tonumber(st[1] or '') or 0
  if proc > cost then cost = proc elseif proc > 0 then cost = cost - (cost - proc) / 10 end
  local fl = (tonumber(st[2] or '') or 0) - 1
  if fl < 0 then fl = 0 end
  -- Answers reach Redis out of order. Within one window (same reset time)
  -- the operating time only grows, so a lower figure is an older answer
  -- arriving late; a report of an earlier window is older still.
  local prevop = tonumber(st[3] or '')
  local prevreset = tonumber(st[4] or '')
  if prevop and prevreset and reset > 0 then
    if reset < prevreset then
      op, reset = prevop, prevreset
    elseif reset == prevreset and op < prevop then
      op = prevop
    end
  end
  redis.call('HSET', KEYS[2], 'operating', fmt(op), 'reset_at', fmt(reset), 'observed_at', fmt(now),
    'cost', fmt(cost), 'fl', fl)
  redis.call('PEXPIRE', KEYS[2], rttl)
  untl = 0
  if op >= threshold then
    if reset > now then untl = reset else untl = now + fallback end
  end
elseif untl == 0 then
  -- A 429 without a reset time: the last report's reset time when it is
  -- still ahead (the portal said when the oldest execution leaves the
  -- window), else the fallback.
  local known = tonumber(redis.call('HGET', KEYS[2], 'reset_at') or '') or 0
  if known > horizon then known = horizon end
  if known > now then untl = known else untl = now + fallback end
elseif untl <= now then
  untl = now + fallback
end

local cur = tonumber(redis.call('GET', KEYS[1]) or '') or 0
if cur <= now then cur = 0 end
if untl > cur then
  redis.call('SET', KEYS[1], fmt(untl), 'PX', math.ceil((untl - now) / 1000))
  return untl
end
return cur
`)

// doneScript counts one call fewer in flight (a call that ended without a
// report).
//
// Input:
// KEYS[1] -> PREFIX:{PORTAL}:op:METHOD (keys.Report)
//
// Output: 0.
var doneScript = redis.NewScript(`
local fl = tonumber(redis.call('HGET', KEYS[1], 'fl') or '')
if fl and fl > 0 then redis.call('HSET', KEYS[1], 'fl', fl - 1) end
return 0
`)

// blockedScript reads a method's block.
//
// Input:
// KEYS[1] -> PREFIX:{PORTAL}:block:METHOD (keys.Block)
// --
// ARGV[1] -> now, µs (0: the Redis server's clock)
//
// Output: the block's end in µs, 0 if the method is not blocked.
var blockedScript = redis.NewScript(luaPrelude + `
local cur = tonumber(redis.call('GET', KEYS[1]) or '') or 0
if cur > now then return cur end
return 0
`)

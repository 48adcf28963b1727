package limiter

import "github.com/redis/go-redis/v9"

// All scripts take the current time in microseconds as ARGV[1]; 0 means "use
// the Redis server's clock" (TIME), so that the clocks of worker hosts do not
// matter. Absolute times are stored as integer microseconds formatted with
// %.0f (Lua's tostring would round them to 14 significant digits). TTLs are
// set relative to the script's now (PEXPIRE, not PEXPIREAT) so that an injected
// clock far from the server's clock still yields sane expiries.
//
// The bucket hash (KEYS[1] of grant and throttle) holds the GCRA state:
//
//	tat  theoretical arrival time (µs): the bucket holds (tat-now)*rate requests
//	rate effective rate (req/s), between MinRate and Rate
//	n    grants since the last rate change (for the additive-increase step)
//	dec  time of the last decrease (µs), to count 503s within Cooldown once
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

// grantScript: KEYS[1] bucket, KEYS[2] block key, KEYS[3] report key of the
// method, optional KEYS[4] a marker to set with the grant (see
// [Limiter.WaitMarked]). ARGV: now, rate, burst, minRate, maxDelay µs (<0: no
// limit), increase step (grants), idle TTL ms, operating threshold µs,
// in-flight TTL µs, marker TTL ms.
// Returns {code, value, rate, slot, tracked, marked}: {0, delay µs, rate, slot µs}
// granted, where slot = now + delay is the absolute time of the slot
// (compared with a cooldown's end by waiters); {1, until µs, rate, 0}
// blocked; {2, delay µs, rate, 0} not reserved because delay > maxDelay;
// {3, wait µs, rate, 0} not reserved because the calls in flight may use up
// the method's budget (or the window moved since the last report and one of
// them is measuring it): ask again after wait. tracked is 1 when the method
// has a report hash; marked is 1 when a grant found the marker already set
// (it is set, with its TTL, only when the slot is granted).
var grantScript = redis.NewScript(luaPrelude + `
local cfg = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local minr = tonumber(ARGV[4])
local maxd = tonumber(ARGV[5])
local step = tonumber(ARGV[6])
local idle = tonumber(ARGV[7])
local threshold = tonumber(ARGV[8])
local flttl = tonumber(ARGV[9])

local blocked = redis.call('GET', KEYS[2])
if blocked then
  local untl = tonumber(blocked)
  if untl > now then return {1, untl, tostring(cfg), 0, 0, 0} end
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
      return {3, math.ceil(w), tostring(cfg), 0, 1, 0}
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
  return {2, math.ceil(delay), tostring(r), 0, tracked, 0}
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
local marked = 0
if KEYS[4] then
  if redis.call('SET', KEYS[4], fmt(math.floor(now / 1000000)), 'PX', tonumber(ARGV[10]), 'GET') then marked = 1 end
end
return {0, math.ceil(delay), tostring(r), now + math.ceil(delay), tracked, marked}
`)

// throttleScript: KEYS[1] bucket. ARGV: now, rate, burst, minRate, cooldown
// µs, idle TTL ms, pause channel. Pushes tat so that the bucket is full at
// now+cooldown and multiplies the rate by 0.8 (floor minRate) unless it was
// already decreased within the last cooldown. It PUBLISHes the cooldown's end
// (µs, decimal) on the pause channel in the same atomic step, so that waiters
// in every process learn of it without a round trip of their own. (The
// channel is an argument, not a key: PUBLISH reaches every node of a Cluster.)
// Returns {rate, decreased (0/1), cooldown end µs}.
var throttleScript = redis.NewScript(luaPrelude + `
local cfg = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local minr = tonumber(ARGV[4])
local cool = tonumber(ARGV[5])
local idle = tonumber(ARGV[6])
local chan = ARGV[7]

local st = redis.call('HMGET', KEYS[1], 'tat', 'rate', 'dec')
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
redis.call('HSET', KEYS[1], 'tat', fmt(tat), 'rate', string.format('%.17g', nr), 'n', 0, 'dec', fmt(dec))
redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + idle)
redis.call('PUBLISH', chan, fmt(cend))
return {tostring(nr), decreased, math.ceil(cend)}
`)

// blockScript: KEYS[1] block key, KEYS[2] report key. ARGV: now, until µs
// (0: unknown — the stored report's reset time if ahead, else now+fallback),
// operating µs (<0: no report), resetAt µs,
// threshold µs, fallback block µs, report TTL ms, processing µs (the
// reported call's billed time; 0: unknown).
// With a report it is stored in KEYS[2] (one call fewer in flight, the
// cost estimate updated); the method is blocked when
// operating >= threshold, until resetAt if that is in the future, else for the
// fallback duration. Without a report until (or now+fallback if until <= now)
// is applied. A block is only ever extended. Returns the block's until µs
// after the call (0: not blocked).
var blockScript = redis.NewScript(luaPrelude + `
local untl = tonumber(ARGV[2])
local op = tonumber(ARGV[3])
local reset = tonumber(ARGV[4])
local threshold = tonumber(ARGV[5])
local fallback = tonumber(ARGV[6])
local rttl = tonumber(ARGV[7])
local proc = tonumber(ARGV[8])

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

// doneScript: KEYS[1] report key. One call fewer in flight (a call that
// ended without a report). Returns nothing.
var doneScript = redis.NewScript(`
local fl = tonumber(redis.call('HGET', KEYS[1], 'fl') or '')
if fl and fl > 0 then redis.call('HSET', KEYS[1], 'fl', fl - 1) end
return 0
`)

// blockedScript: KEYS[1] block key. ARGV: now. Returns until µs or 0.
var blockedScript = redis.NewScript(luaPrelude + `
local cur = tonumber(redis.call('GET', KEYS[1]) or '') or 0
if cur > now then return cur end
return 0
`)

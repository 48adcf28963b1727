// Package claim is the one definition of an object claim: the Redis record
// that says which task is creating an object in a portal (a department by
// PARENT and NAME, a workplace by title), and whether whoever comes next
// must look the object up before creating it.
//
// Bitrix24 has no idempotency key, and the queue delivers at least once, so
// two runs may try to create the same object: two imports that share a
// department, a task re-run after its lease expired while the first run
// still works, a retry after a lost answer. A claim makes them take turns:
//
//   - Take: nobody holds the claim → it is the caller's (Fresh: create at
//     once). The same owner (an earlier run of the same task) held it →
//     Resumed: the earlier run may have created the object, look it up first
//     (not before Since + the portal's longest request, see Since). The
//     claim was settled ("look") → Look: someone finished, look up first.
//     Another owner holds it → Busy: wait and try again later.
//   - Check: right before a create request is granted (in the limiter's
//     grant script, atomically with the slot) the claim must still be this
//     attempt's (owner and token); otherwise the attempt was superseded (a
//     run that outlived its lease) and must not send.
//   - Settle: after the outcome is known, the owner marks the claim "look"
//     (created, adopted, or unknown for good: whoever comes next looks first)
//     or frees it (nothing was created).
//
// The record is a hash at a key with the portal's hash tag (see
// internal/keys): s = "run" or "look"; o = owner (a stable task identity);
// t = token (one run of the owner); at = µs, the latest time a create
// request under this claim may have been sent (0: none sent). The Lua below
// is the only code that reads or writes it; the limiter's grant script
// includes it.
package claim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// State is what Take found.
type State int

// States of a claim as Take reports them, and the check's answers. The Lua
// defines the same names from these constants (Lua).
const (
	Fresh      State = 1 // nobody held it: the caller's now; create at once
	Resumed    State = 2 // the same owner held it: look up first (after Since)
	Look       State = 3 // settled: look up first
	Busy       State = 4 // another owner holds it: try again later
	Ours       State = 5 // check: still this attempt's
	Superseded State = 6 // check: not this attempt's any more
)

// String names the state for logs.
func (s State) String() string {
	switch s {
	case Fresh:
		return "fresh"
	case Resumed:
		return "resumed"
	case Look:
		return "look"
	case Busy:
		return "busy"
	case Ours:
		return "ours"
	case Superseded:
		return "superseded"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// LookFirst reports whether an attempt that found s must look the object up
// before creating it.
func (s State) LookFirst() bool { return s == Resumed || s == Look }

// Outcome is how an owner settles a claim.
type Outcome int

// Outcomes of Settle. Lua names them too.
const (
	// Known: the object exists (created or adopted), or its outcome is
	// unknown for good: whoever claims it next looks it up first.
	Known Outcome = 1
	// Free: nothing was created; whoever claims it next may create at once.
	Free Outcome = 2
)

// Lua defines the claim functions for scripts (the limiter's grant script
// and the scripts of this package). Every claim key must carry the same
// hash tag as the other keys of the script.
//
//	claim_take(key, owner, token, since, ttl_ms) -> state, since_before
//	claim_check(key, owner, token, since, ttl_ms) -> OURS or SUPERSEDED
//
// claim_take sets a Fresh claim with since as its "at" (the time its create
// request leaves; 0 when none is granted yet). A Resumed or Look claim is
// taken over with the caller's token and keeps its "at" (the earlier run's
// request may still be at the portal). claim_check sets "at" to since when it
// is later. Both renew the TTL of a claim they keep.
var Lua = consts() + `
local function claim_take(key, owner, token, since, ttl)
  local c = redis.call('HMGET', key, 's', 'o', 'at')
  if not c[1] then
    redis.call('HSET', key, 's', 'run', 'o', owner, 't', token, 'at', string.format('%.0f', since))
    redis.call('PEXPIRE', key, ttl)
    return CLAIM_FRESH, 0
  end
  local at = tonumber(c[3] or '') or 0
  if c[1] == 'look' then
    redis.call('HSET', key, 's', 'run', 'o', owner, 't', token, 'at', 0)
    redis.call('PEXPIRE', key, ttl)
    return CLAIM_LOOK, 0
  end
  if c[2] == owner then
    redis.call('HSET', key, 's', 'run', 't', token)
    redis.call('PEXPIRE', key, ttl)
    return CLAIM_RESUMED, at
  end
  return CLAIM_BUSY, at
end

local function claim_check(key, owner, token, since, ttl)
  local c = redis.call('HMGET', key, 's', 'o', 't', 'at')
  if c[1] ~= 'run' or c[2] ~= owner or c[3] ~= token then return CLAIM_SUPERSEDED end
  if since > (tonumber(c[4] or '') or 0) then redis.call('HSET', key, 'at', string.format('%.0f', since)) end
  redis.call('PEXPIRE', key, ttl)
  return CLAIM_OURS
end
`

func consts() string {
	var b strings.Builder
	for _, c := range []struct {
		name string
		v    int
	}{
		{"CLAIM_FRESH", int(Fresh)}, {"CLAIM_RESUMED", int(Resumed)}, {"CLAIM_LOOK", int(Look)},
		{"CLAIM_BUSY", int(Busy)}, {"CLAIM_OURS", int(Ours)}, {"CLAIM_SUPERSEDED", int(Superseded)},
		{"CLAIM_KNOWN", int(Known)}, {"CLAIM_FREE", int(Free)},
	} {
		fmt.Fprintf(&b, "local %s = %d\n", c.name, c.v)
	}
	return b.String()
}

// Claim names one claim of one attempt.
type Claim struct {
	// Key is the claim's key (keys.Space.Object), with the portal's tag.
	Key string
	// Owner is the stable identity of the work across its runs: the task ID
	// (an import item's deterministic ID).
	Owner string
	// Token identifies this run of the owner (NewToken).
	Token string
}

// NewToken returns a random token for one run.
func NewToken() string { return strconv.FormatUint(rnd(), 36) }

// Taken is Take's answer for one claim.
type Taken struct {
	State State
	// Since is, for Resumed and Busy, the latest time a create request of the
	// holder may have been sent (zero: none was).
	Since time.Time
}

// takeScript takes claims without a limiter grant (a batch before its
// lookups; a worker that also waits for replicas).
//
// Input:
// KEYS[1..n] -> claim keys (keys.Space.Object), one tag
// --
// ARGV[1] -> claim TTL, ms
// ARGV[2k], ARGV[2k+1] -> owner and token of KEYS[k]
//
// Output: a list of n pairs {state, since µs}.
var takeScript = redis.NewScript(Lua + `
local out = {}
for i, k in ipairs(KEYS) do
  local st, at = claim_take(k, ARGV[2 * i], ARGV[2 * i + 1], 0, tonumber(ARGV[1]))
  out[#out + 1] = st
  out[#out + 1] = at
end
return out
`)

// Take takes every claim of cs (all with one hash tag) for ttl, and reports
// what it found for each. One round trip.
func Take(ctx context.Context, rdb redis.Scripter, ttl time.Duration, cs []Claim) ([]Taken, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	keys, args := scriptArgs(ttl, cs)
	res, err := takeScript.Run(ctx, rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("take claims: %w", err)
	}
	if len(res) != 2*len(cs) {
		return nil, fmt.Errorf("take claims: unexpected answer %v", res)
	}
	out := make([]Taken, len(cs))
	for i := range cs {
		out[i] = Taken{State: State(res[2*i]), Since: micros(res[2*i+1])}
	}
	return out, nil
}

// checkScript checks claims without a grant (after a long wait for a slot).
//
// Input:
// KEYS[1..n] -> claim keys, one tag
// --
// ARGV[1] -> claim TTL, ms
// ARGV[2k], ARGV[2k+1] -> owner and token of KEYS[k]
//
// Output: a list of the 1-based indexes of the claims that are not the
// attempt's any more (empty: all are).
var checkScript = redis.NewScript(Lua + `
local bad = {}
for i, k in ipairs(KEYS) do
  if claim_check(k, ARGV[2 * i], ARGV[2 * i + 1], 0, tonumber(ARGV[1])) ~= CLAIM_OURS then bad[#bad + 1] = i end
end
return bad
`)

// Check reports the indexes (0-based) of the claims of cs that are not
// their attempt's any more. One round trip.
func Check(ctx context.Context, rdb redis.Scripter, ttl time.Duration, cs []Claim) ([]int, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	keys, args := scriptArgs(ttl, cs)
	res, err := checkScript.Run(ctx, rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("check claims: %w", err)
	}
	bad := make([]int, len(res))
	for i, n := range res {
		bad[i] = int(n) - 1
	}
	return bad, nil
}

// settleScript settles the claims the caller still holds.
//
// Input:
// KEYS[1..n] -> claim keys, one tag
// --
// ARGV[1] -> TTL of a Known ("look") claim, ms
// ARGV[3k-1], ARGV[3k], ARGV[3k+1] -> owner, token ("": any run of the
// owner), outcome (CLAIM_KNOWN or CLAIM_FREE) of KEYS[k]
//
// Output: the number of claims settled (the others are not the caller's).
var settleScript = redis.NewScript(Lua + `
local n = 0
for i, k in ipairs(KEYS) do
  local c = redis.call('HMGET', k, 's', 'o', 't')
  if c[1] == 'run' and c[2] == ARGV[3 * i - 1] and (c[3] == ARGV[3 * i] or ARGV[3 * i] == '') then
    redis.call('DEL', k)
    if tonumber(ARGV[3 * i + 1]) == CLAIM_KNOWN then
      redis.call('HSET', k, 's', 'look')
      redis.call('PEXPIRE', k, tonumber(ARGV[1]))
    end
    n = n + 1
  end
end
return n
`)

// Settlement is one claim's outcome for Settle.
type Settlement struct {
	Claim
	Outcome Outcome
}

// Settle settles every claim of ss the caller still holds (a Settlement
// with an empty Token settles whatever run of its Owner holds the claim:
// for a task that failed for good, whose runs are over); a Known claim stays
// "look" for lookTTL. One round trip.
func Settle(ctx context.Context, rdb redis.Scripter, lookTTL time.Duration, ss []Settlement) error {
	if len(ss) == 0 {
		return nil
	}
	keys := make([]string, len(ss))
	args := make([]any, 0, 1+3*len(ss))
	args = append(args, max(lookTTL.Milliseconds(), 1))
	for i, s := range ss {
		keys[i] = s.Key
		args = append(args, s.Owner, s.Token, int(s.Outcome))
	}
	if err := settleScript.Run(ctx, rdb, keys, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("settle claims: %w", err)
	}
	return nil
}

func rnd() uint64 { return rand.Uint64() }

func micros(v int64) time.Time {
	if v <= 0 {
		return time.Time{}
	}
	return time.UnixMicro(v)
}

// scriptArgs are the KEYS and ARGV of takeScript and checkScript: the claim
// keys, then the TTL in ms and each claim's owner and token.
func scriptArgs(ttl time.Duration, cs []Claim) ([]string, []any) {
	keys := make([]string, len(cs))
	args := make([]any, 0, 1+2*len(cs))
	args = append(args, max(ttl.Milliseconds(), 1))
	for i, c := range cs {
		keys[i] = c.Key
		args = append(args, c.Owner, c.Token)
	}
	return keys, args
}

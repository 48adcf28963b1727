// Package keys is the one place that names b24queue's own Redis keys (the
// queue's keys are asynq's). Every other package builds its keys here, so
// the layout can be read in one file and changed in one place.
//
// # Layout
//
// Every key starts with a prefix (DefaultPrefix, "b24q", unless a fleet or
// a test picks another; every process of a fleet must use the same). Keys
// of one portal carry the portal's name as a Redis Cluster hash tag, keys
// of one import the import's ID:
//
//	PREFIX:{PORTAL}:bucket            limiter: GCRA state of the shared request bucket
//	PREFIX:{PORTAL}:block:METHOD      limiter: end of METHOD's operating-time block
//	PREFIX:{PORTAL}:op:METHOD         limiter: METHOD's last operating report, calls in flight
//	PREFIX:{PORTAL}:throttled         limiter: pub/sub channel of 503 cooldowns (holds nothing)
//	PREFIX:{PORTAL}:claim:TASK_ID     tasks: which batch holds an import item
//	PREFIX:{PORTAL}:obj:KIND:HASH     tasks: who is creating an object (internal/claim)
//	PREFIX:{PORTAL}:unavailable       limiter: why the portal is unavailable, since when, next probe
//	PREFIX:{PORTAL}:reqs              limiter: requests granted per second, recent minutes (a ring)
//	PREFIX:{PORTAL}:usage             limiter: every method's last operating report, sampled
//	PREFIX:{PORTAL}:oauth             fleet: the portal's OAuth token pair (a token store key: secrets)
//	PREFIX:{PORTAL}:credential        fleet: a registered portal's webhook or OAuth app (a token store key: secrets)
//	PREFIX:{portals}                  fleet: registered portals, name → public record (no secret)
//	PREFIX:{portals}:version          fleet: counts changes of the registry, so workers reload only then
//	PREFIX:{portals}:changes          fleet: sorted set, portal name → revision of its last change
//	PREFIX:active                     tasks/fleet: set of the portals that have work in their queue
//	PREFIX:workers                    fleet: live workers, ID → JSON (expiry, portals of their own config)
//	PREFIX:imp:{ID}:meta|spec|...     import state, see Import
//	PREFIX:imports                    sorted set of import IDs by creation time (ms), newest last
//
// # The hash-tag rule
//
// A Lua script may only touch keys of one Cluster slot. So every key a
// script touches together carries the same tag: {PORTAL} for a portal's
// limiter state, markers and claims, {ID} for one import. Names that go
// into a tag must not contain braces (portal names and import IDs are
// validated by their producers; Tag refuses nothing, so callers check).
package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// DefaultPrefix is the prefix of every key unless another is configured.
const DefaultPrefix = "b24q"

// Space builds the keys under one prefix. The zero value uses
// DefaultPrefix. It is a plain value: copy it freely.
type Space struct{ prefix string }

// New returns the key space under prefix ("" means DefaultPrefix).
func New(prefix string) Space { return Space{prefix: prefix} }

// Prefix returns the space's prefix.
func (s Space) Prefix() string {
	if s.prefix == "" {
		return DefaultPrefix
	}
	return s.prefix
}

// Tag wraps name in braces: the Redis Cluster hash tag that puts every key
// containing it in one slot.
func Tag(name string) string { return "{" + name + "}" }

// portal returns PREFIX:{PORTAL}:part1:part2...
func (s Space) portal(portal string, parts ...string) string {
	return s.Prefix() + ":" + Tag(portal) + ":" + strings.Join(parts, ":")
}

// Bucket is the limiter's shared request bucket of a portal.
func (s Space) Bucket(portal string) string { return s.portal(portal, "bucket") }

// Block holds the end of method's operating-time block on a portal.
func (s Space) Block(portal, method string) string { return s.portal(portal, "block", method) }

// Report is method's last operating report on a portal and its calls in flight.
func (s Space) Report(portal, method string) string { return s.portal(portal, "op", method) }

// Unavailable holds why a portal is unavailable (a revoked credential, a
// deleted or moved portal, ...), since when, and when to probe it next.
func (s Space) Unavailable(portal string) string { return s.portal(portal, "unavailable") }

// Requests counts the requests granted on a portal per second of their
// slot, over the last minutes: a hash used as a ring (see limiter's grant
// script), so that its size is bounded whatever the load.
func (s Space) Requests(portal string) string { return s.portal(portal, "reqs") }

// Usage holds, per method, the last operating report a worker sampled
// (time.operating and operating_reset_at), also for methods far from their
// budget, for which no Report hash exists.
func (s Space) Usage(portal string) string { return s.portal(portal, "usage") }

// Throttled is the pub/sub channel of a portal's 503 cooldowns.
func (s Space) Throttled(portal string) string { return s.portal(portal, "throttled") }

// ThrottledPattern matches the Throttled channel of every portal (PSUBSCRIBE).
// Glob metacharacters in the prefix are escaped.
func (s Space) ThrottledPattern() string {
	var b strings.Builder
	for _, r := range s.Prefix() {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String() + ":{*}:throttled"
}

// PortalOfThrottled returns the portal a Throttled channel belongs to.
func (s Space) PortalOfThrottled(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, s.Prefix()+":{")
	if !ok {
		return "", false
	}
	portal, ok := strings.CutSuffix(rest, "}:throttled")
	return portal, ok && portal != ""
}

// Claim says which batch task holds the import item task itemTaskID.
func (s Space) Claim(portal, itemTaskID string) string { return s.portal(portal, "claim", itemTaskID) }

// Object is the claim (internal/claim) on creating one object of a portal:
// kind "d" for a department, "w" for a workplace; identity is what makes
// the object the same one (parent and name, or title), stored as a SHA-256
// prefix so that any name makes a short, safe key.
func (s Space) Object(portal, kind, identity string) string {
	sum := sha256.Sum256([]byte(identity))
	return s.portal(portal, "obj", kind, hex.EncodeToString(sum[:16]))
}

// OAuth holds a portal's OAuth token pair: a token store key (secrets).
func (s Space) OAuth(portal string) string { return s.portal(portal, "oauth") }

// Credential holds a registered portal's webhook URL or OAuth application
// (client secret): a token store key (secrets). Portals of the worker's own
// configuration have none.
func (s Space) Credential(portal string) string { return s.portal(portal, "credential") }

// Portals is the registry of portals registered at run time: a hash from
// portal name to its public record (never a secret). It and the two keys
// below share the tag {portals}: a registration changes them in one script.
func (s Space) Portals() string { return s.Prefix() + ":" + Tag("portals") }

// PortalsVersion counts the changes of the registry: workers read it every
// second and reload the records only when it moved.
func (s Space) PortalsVersion() string { return s.Portals() + ":version" }

// PortalsChanges records, for every portal ever registered, the revision
// of its last change (registration or removal): a sorted set that workers
// read from the revision they know, so they read only what changed.
func (s Space) PortalsChanges() string { return s.Portals() + ":changes" }

// Active is the set of portals whose queue has work (pending, scheduled,
// retrying, parked or running tasks): producers add a portal after they
// enqueue, workers remove it once its queue is empty. Workers run a
// portal's queue only while it is in this set.
func (s Space) Active() string { return s.Prefix() + ":active" }

// Workers is the hash of live worker processes: ID → JSON with the expiry
// of its last heartbeat and the portals of its own configuration.
func (s Space) Workers() string { return s.Prefix() + ":workers" }

// PortalPattern matches every key of a portal (for tools and test cleanup).
func (s Space) PortalPattern(portal string) string { return s.Prefix() + ":" + Tag(portal) + ":*" }

// Imports is the index of every import: a sorted set of import IDs scored
// by creation time in ms. It has no hash tag and is written with its own
// command, never from a script (a script touches one import's slot only).
func (s Space) Imports() string { return s.Prefix() + ":imports" }

// Import lists the keys of one import's state, in the order the import
// store's scripts take them as KEYS.
type Import struct {
	Meta   string // hash: portal, digest, total, created_at, counters
	Spec   string // hash: key → compact JSON spec of the item
	Kids   string // hash: parent key → JSON list of child keys
	Parent string // hash: key → parent key
	State  string // hash: key → state letter
	IDs    string // hash: key → portal ID
	Failed string // hash: key → reason
	Lock   string // string: token of the Create in progress
	Marks  string // hash: "a:KEY" adopted, "u:KEY" updated → "1"
}

// Import returns the keys of import id.
func (s Space) Import(id string) Import {
	base := s.Prefix() + ":imp:" + Tag(id) + ":"
	return Import{
		Meta: base + "meta", Spec: base + "spec", Kids: base + "kids", Parent: base + "parent",
		State: base + "state", IDs: base + "ids", Failed: base + "failed", Lock: base + "lock",
		Marks: base + "marks",
	}
}

// List returns the keys in script order: meta, spec, kids, parent, state,
// ids, failed, lock, marks.
func (k Import) List() []string {
	return []string{k.Meta, k.Spec, k.Kids, k.Parent, k.State, k.IDs, k.Failed, k.Lock, k.Marks}
}

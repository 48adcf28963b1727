package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/keys"
)

// Member is one live worker process as the fleet sees it.
type Member struct {
	ID string `json:"id"`
	// Expires is when the member counts as dead unless it beats again.
	Expires time.Time `json:"expires"`
	// Portals are the portals of its own configuration (B24_WEBHOOK_URL,
	// B24_PORTALS_FILE), sorted. Registered portals are everyone's.
	Portals []string `json:"portals,omitempty"`
	// Host and PID say where it runs, for people.
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
}

// Configured reports whether portal is one of m's own portals.
func (m Member) Configured(portal string) bool {
	_, found := slices.BinarySearch(m.Portals, portal)
	return found
}

// Members is the fleet's list of live workers (keys.Workers): a hash from
// member ID to its JSON, read whole by each worker every few seconds. It
// holds one field per process, so it stays small.
type Members struct {
	rdb redis.UniversalClient
	key string
}

// NewMembers returns the member list under prefix ("" means the default).
func NewMembers(rdb redis.UniversalClient, prefix string) Members {
	return Members{rdb: rdb, key: keys.New(prefix).Workers()}
}

// Beat writes m (with Expires set by the caller).
func (ms Members) Beat(ctx context.Context, m Member) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("fleet heartbeat: %w", err)
	}
	if err := ms.rdb.HSet(ctx, ms.key, m.ID, data).Err(); err != nil {
		return fmt.Errorf("fleet heartbeat: %w", err)
	}
	return nil
}

// Leave removes member id at once (a clean shutdown): its portals move to
// the others without waiting for its heartbeat to expire.
func (ms Members) Leave(ctx context.Context, id string) error {
	if err := ms.rdb.HDel(ctx, ms.key, id).Err(); err != nil {
		return fmt.Errorf("fleet leave: %w", err)
	}
	return nil
}

// Live returns the members whose heartbeat has not expired at now, sorted
// by ID, and deletes the expired ones.
func (ms Members) Live(ctx context.Context, now time.Time) ([]Member, error) {
	all, err := ms.rdb.HGetAll(ctx, ms.key).Result()
	if err != nil {
		return nil, fmt.Errorf("read the fleet's members: %w", err)
	}
	live := make([]Member, 0, len(all))
	var dead []string
	for id, data := range all {
		var m Member
		if json.Unmarshal([]byte(data), &m) != nil || !m.Expires.After(now) {
			dead = append(dead, id)
			continue
		}
		m.ID = id
		slices.Sort(m.Portals)
		live = append(live, m)
	}
	if len(dead) > 0 {
		// Best effort: a member that beats again meanwhile rewrites itself.
		_ = ms.rdb.HDel(ctx, ms.key, dead...).Err()
	}
	slices.SortFunc(live, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return live, nil
}

// Owners returns the IDs of the members that run the queue of portal: the
// replicas members that can serve it with the highest rendezvous score of
// (member, portal), or all of them when replicas <= 0. A member can serve a
// registered portal (registered true), or one of its own configuration.
// Every worker computes the same answer from the same list, and when a
// member leaves only the portals it owned move.
func Owners(portal string, registered bool, members []Member, replicas int) []string {
	type scored struct {
		id    string
		score uint64
	}
	var cands []scored
	for _, m := range members {
		if !registered && !m.Configured(portal) {
			continue
		}
		h := fnv.New64a()
		_, _ = h.Write([]byte(m.ID))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(portal))
		cands = append(cands, scored{m.ID, mix(h.Sum64())})
	}
	slices.SortFunc(cands, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	if replicas > 0 && len(cands) > replicas {
		cands = cands[:replicas]
	}
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.id
	}
	return ids
}

// mix spreads FNV's output (whose high bits vary little for keys that
// differ in their last bytes) over the whole range: splitmix64's finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

package store

// This file reads imports for people: the index of every import (newest
// first, paged) and the items of one import with their state. The index is
// a sorted set (keys.Space.Imports) that Create writes with its own
// command, since it lies outside the import's hash slot.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Summary is an import as the index lists it: its meta hash, without the
// per-item maps of Status.
type Summary struct {
	ID        string    `json:"id"`
	Portal    string    `json:"portal"`
	CreatedAt time.Time `json:"created_at"`
	Counts    Counts    `json:"counts"`
	// Done is true when nothing is pending or waiting.
	Done bool `json:"done"`
}

// summaryOf reads an import's meta hash; ok is false when the hash is
// missing or incomplete (no such import, or one still being created).
func summaryOf(id string, m map[string]string) (sum Summary, ok bool) {
	if len(m) == 0 || m["digest"] == "" {
		return Summary{}, false
	}
	num := func(f string) int { n, _ := strconv.Atoi(m[f]); return n }
	sum = Summary{
		ID:     id,
		Portal: m["portal"],
		Counts: Counts{
			Total:   num("total"),
			Created: num(stateCreated.counter()) - num(counterAdopted),
			Adopted: num(counterAdopted),
			Updated: num(counterUpdated),
			Pending: num(stateQueued.counter()),
			Waiting: num(stateWaiting.counter()),
			Failed:  num(stateFailed.counter()),
		},
	}
	if ts, err := strconv.ParseInt(m["created_at"], 10, 64); err == nil {
		sum.CreatedAt = time.Unix(ts, 0)
	}
	sum.Done = sum.Counts.Pending == 0 && sum.Counts.Waiting == 0
	return sum, true
}

// index adds a new import to the index, scored by now in ms, drops the
// entries older than the state TTL (their state has expired) and gives the
// index the state TTL. A failure is
// logged, not returned: the import exists and works; only its listing is
// missing.
func (s *Store) index(ctx context.Context, id string, now time.Time) {
	key := s.space.Imports()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: float64(now.UnixMilli()), Member: id})
		p.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(now.Add(-s.ttl).UnixMilli(), 10))
		// Without a new import for a whole TTL, every import has expired.
		p.PExpire(ctx, key, s.ttl)
		return nil
	})
	if err != nil {
		s.logger.WarnContext(ctx, "import not added to the index of imports", "import_id", id, "err", err)
	}
}

// Page is one page of the index of imports.
type Page struct {
	// Imports are newest first.
	Imports []Summary `json:"imports"`
	// Total is the number of imports in the index (entries whose state
	// expired count until a page meets them).
	Total int `json:"total"`
	// Offset is the position of Imports[0] in the index.
	Offset int `json:"offset"`
}

// List returns up to limit imports of the index, newest first, starting
// at offset (limit <= 0 means 50). Two round trips. Index entries whose
// state has expired or was deleted are dropped from the index on the way,
// so a page may hold fewer than limit imports.
func (s *Store) List(ctx context.Context, offset, limit int) (Page, error) {
	if limit <= 0 {
		limit = 50
	}
	offset = max(offset, 0)
	key := s.space.Imports()
	var card *redis.IntCmd
	var ids *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		card = p.ZCard(ctx, key)
		ids = p.ZRevRange(ctx, key, int64(offset), int64(offset+limit-1))
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("list imports: %w", err)
	}
	page := Page{Total: int(card.Val()), Offset: offset}
	if len(ids.Val()) == 0 {
		return page, nil
	}
	metas := make([]*redis.MapStringStringCmd, len(ids.Val()))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids.Val() {
			metas[i] = p.HGetAll(ctx, s.keys(id).Meta)
		}
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("list imports: read meta: %w", err)
	}
	var gone []any
	for i, id := range ids.Val() {
		sum, ok := summaryOf(id, metas[i].Val())
		if !ok {
			gone = append(gone, id)
			continue
		}
		page.Imports = append(page.Imports, sum)
	}
	if len(gone) > 0 {
		if err := s.rdb.ZRem(ctx, key, gone...).Err(); err == nil {
			page.Total -= len(gone)
		}
	}
	return page, nil
}

// ItemState is an item's state as people read it.
type ItemState string

// The states of ItemInfo.
const (
	ItemWaiting ItemState = "waiting" // waits for its parent's ID
	ItemPending ItemState = "pending" // queued: its task may run now
	ItemCreated ItemState = "created" // the portal holds it (PortalID)
	ItemFailed  ItemState = "failed"  // failed for good (Reason)
)

// itemStates maps the state letters to ItemState.
var itemStates = map[state]ItemState{
	stateWaiting: ItemWaiting,
	stateQueued:  ItemPending,
	stateCreated: ItemCreated,
	stateFailed:  ItemFailed,
}

// ItemInfo is one item of an import with its state.
type ItemInfo struct {
	Key  string `json:"key"`
	Kind Kind   `json:"kind"`
	// Name is the department's name or the workplace's title.
	Name string `json:"name"`
	// Parent is the parent's key in the file ("" for a root or a
	// workplace); ParentID the file's parent_id of a root department.
	Parent   string `json:"parent,omitempty"`
	ParentID int64  `json:"parent_id,omitempty"`
	// Depth is 0 for roots and workplaces, 1 for their children, ...
	Depth int       `json:"depth"`
	State ItemState `json:"state"`
	// PortalID is the object's ID in the portal once created.
	PortalID int64 `json:"portal_id,omitempty"`
	// Reason is why the item failed (see Status.Failed).
	Reason string `json:"reason,omitempty"`
}

// Items returns every item of the import in tree order: each root (in file
// order), then its subtree depth first, children in file order; workplaces
// are roots. One atomic read (a transaction on the import's keys), O(items).
// An unknown import wraps [ErrNotFound].
func (s *Store) Items(ctx context.Context, id string) ([]ItemInfo, error) {
	k := s.keys(id)
	var meta *redis.IntCmd
	var specs, states, ids, failed, kids *redis.MapStringStringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.Exists(ctx, k.Meta)
		specs = p.HGetAll(ctx, k.Spec)
		states = p.HGetAll(ctx, k.State)
		ids = p.HGetAll(ctx, k.IDs)
		failed = p.HGetAll(ctx, k.Failed)
		kids = p.HGetAll(ctx, k.Kids)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import %s: read items: %w", id, err)
	}
	if meta.Val() == 0 {
		return nil, fmt.Errorf("import %s: %w", id, ErrNotFound)
	}
	r := itemReader{id: id, specs: specs.Val(), states: states.Val(), ids: ids.Val(), failed: failed.Val(),
		kids: kids.Val(), seen: make(map[string]bool, len(specs.Val()))}
	out := make([]ItemInfo, 0, len(r.specs))
	if out, err = r.walk(out, "", 0); err != nil {
		return nil, err
	}
	// Items no walk reached (not expected: every item is a root or some
	// parent's child) still show, by key.
	var rest []string
	for key := range r.specs {
		if !r.seen[key] {
			rest = append(rest, key)
		}
	}
	slices.Sort(rest)
	for _, key := range rest {
		it, err := r.item(key, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// itemReader turns the hashes of one import into ItemInfos.
type itemReader struct {
	id                               string
	specs, states, ids, failed, kids map[string]string
	seen                             map[string]bool
}

// walk appends the children of parent ("" for the roots) and their
// subtrees, depth first, with an explicit stack (trees may be deep).
func (r *itemReader) walk(out []ItemInfo, parent string, depth int) ([]ItemInfo, error) {
	type frame struct {
		keys  []string
		depth int
	}
	roots, err := r.children(parent)
	if err != nil {
		return nil, err
	}
	stack := []frame{{roots, depth}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if len(top.keys) == 0 {
			stack = stack[:len(stack)-1]
			continue
		}
		key, d := top.keys[0], top.depth
		top.keys = top.keys[1:]
		if r.seen[key] || r.specs[key] == "" {
			continue
		}
		it, err := r.item(key, d)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
		kids, err := r.children(key)
		if err != nil {
			return nil, err
		}
		if len(kids) > 0 {
			stack = append(stack, frame{kids, d + 1})
		}
	}
	return out, nil
}

func (r *itemReader) children(parent string) ([]string, error) {
	raw := r.kids[parent]
	if raw == "" {
		return nil, nil
	}
	var keys []string
	if err := json.Unmarshal([]byte(raw), &keys); err != nil {
		return nil, fmt.Errorf("import %s: children of %q: %w", r.id, parent, err)
	}
	return keys, nil
}

func (r *itemReader) item(key string, depth int) (ItemInfo, error) {
	r.seen[key] = true
	var sp spec
	if err := json.Unmarshal([]byte(r.specs[key]), &sp); err != nil {
		return ItemInfo{}, fmt.Errorf("import %s: spec of %s: %w", r.id, key, err)
	}
	it := sp.item(key)
	info := ItemInfo{Key: key, Kind: it.Kind, Name: it.Name, Parent: it.Parent, ParentID: it.ParentID, Depth: depth,
		State: itemStates[state(r.states[key])], Reason: r.failed[key]}
	if info.State == "" {
		info.State = ItemState("unknown")
	}
	if v, ok := r.ids[key]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return ItemInfo{}, fmt.Errorf("import %s: ID of %s: %w", r.id, key, err)
		}
		info.PortalID = n
	}
	return info, nil
}

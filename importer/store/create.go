package store

// This file writes a new import: Create and its steps.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/internal/keys"
)

// chunk is how many hash fields one HSET carries.
const chunk = 1000

// Create writes the state of a new import: every item, its parent, the
// children of every department, and the initial states (departments with a
// parent_id and workplaces queued, the others waiting on their parent). f
// must be valid (see [importer.File.Validate]); digest identifies its content (e.g.
// [importer.File.ID]) and portal the portal it goes to.
//
// A new import is added to the index of imports ([Store.List]).
//
// The import becomes visible only once complete: the meta hash is written
// last, so a Create that dies half-way leaves state that no reader sees and
// the next Create overwrites. Concurrent Creates of one ID are serialised by
// a lock key. If the import already exists with the same digest and portal,
// nothing is written and existing is true; with another digest or portal the
// error wraps [ErrConflict].
//
// 10,000 items cost a few pipelined round trips (HSET of up to 1,000 fields
// per command).
func (s *Store) Create(ctx context.Context, id, portal, digest string, f *importer.File) (existing bool, err error) {
	if err := importer.ValidateID(id); err != nil {
		return false, err
	}
	k := s.keys(id)
	token := make([]byte, 12)
	_, _ = rand.Read(token)
	tok := hex.EncodeToString(token)
	if existing, err := s.lock(ctx, id, portal, digest, tok); err != nil || existing {
		return existing, err
	}
	h, err := itemHashes(id, f)
	if err != nil {
		return false, err
	}
	if err := s.writeItems(ctx, k, h); err != nil {
		s.rdb.Del(context.WithoutCancel(ctx), k.Lock)
		return false, fmt.Errorf("import %s: write items: %w", id, err)
	}
	now := time.Now()
	res, err := finishScript.Run(ctx, s.rdb, k.List(), s.ttlMS(), tok, portal, digest, h.total, now.Unix(), h.queued, h.waiting).Int()
	if err != nil {
		return false, fmt.Errorf("import %s: write meta: %w", id, err)
	}
	if res == 0 {
		// Our lock expired and another Create took over.
		existing, err := s.checkExisting(ctx, id, portal, digest)
		if err == nil && !existing {
			err = fmt.Errorf("import %s: the create lock expired before the import was written; submit again", id)
		}
		return existing, err
	}
	s.index(ctx, id, now)
	return false, nil
}

// lock takes the create lock of import id with token tok, waiting while
// another Create holds it. It returns existing true (and no lock) when the
// import exists with this content, an error wrapping ErrConflict when it
// exists with another; otherwise the caller holds the lock.
func (s *Store) lock(ctx context.Context, id, portal, digest, tok string) (existing bool, err error) {
	lockKey := s.keys(id).Lock
	for {
		existing, err := s.checkExisting(ctx, id, portal, digest)
		if err != nil || existing {
			return existing, err
		}
		ok, err := s.rdb.SetNX(ctx, lockKey, tok, s.lockTTL).Result()
		if err != nil {
			return false, fmt.Errorf("import %s: take create lock: %w", id, err)
		}
		if ok {
			break
		}
		// Another process is creating this import: wait for it to finish
		// (or for its lock to expire) and look again.
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("import %s: wait for a concurrent create: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// We hold the lock: a finished import may have appeared just before.
	if existing, err := s.checkExisting(ctx, id, portal, digest); err != nil || existing {
		s.rdb.Del(context.WithoutCancel(ctx), lockKey)
		return existing, err
	}
	return false, nil
}

// hashes are the items of an import as fields of its hashes (field, value,
// field, value, ...), with the initial counters.
type hashes struct {
	specs, states, parents, kids []any
	total, queued, waiting       int
}

// itemHashes lays out f's items: every item's spec and initial state (a
// department with a parent in the file waits, the others are queued), the
// parent of every child and the children of every parent ("" holding the
// roots and workplaces).
func itemHashes(id string, f *importer.File) (hashes, error) {
	total := len(f.Departments) + len(f.Workplaces)
	h := hashes{
		specs:   make([]any, 0, 2*total),
		states:  make([]any, 0, 2*total),
		parents: make([]any, 0, 2*len(f.Departments)),
		total:   total,
	}
	kids := make(map[string][]string)
	var kidOrder []string // parent keys in first-seen order, for deterministic writes
	addKid := func(parent, key string) {
		if _, ok := kids[parent]; !ok {
			kidOrder = append(kidOrder, parent)
		}
		kids[parent] = append(kids[parent], key)
	}
	for i := range f.Departments {
		d := &f.Departments[i]
		sp := spec{K: "d", N: d.Name, P: d.Parent, S: d.Sort, H: d.Head}
		st := stateWaiting
		if d.Parent == "" {
			st = stateQueued
			if d.ParentID != nil {
				sp.PI = *d.ParentID
			}
			addKid("", d.Key)
			h.queued++
		} else {
			h.parents = append(h.parents, d.Key, d.Parent)
			addKid(d.Parent, d.Key)
			h.waiting++
		}
		b, err := json.Marshal(sp)
		if err != nil {
			return hashes{}, fmt.Errorf("import %s: encode %s: %w", id, d.Key, err)
		}
		h.specs = append(h.specs, d.Key, string(b))
		h.states = append(h.states, d.Key, string(st))
	}
	for i := range f.Workplaces {
		w := &f.Workplaces[i]
		b, err := json.Marshal(spec{K: "w", N: w.Title, T: w.TypeIDs})
		if err != nil {
			return hashes{}, fmt.Errorf("import %s: encode %s: %w", id, w.Key, err)
		}
		h.specs = append(h.specs, w.Key, string(b))
		h.states = append(h.states, w.Key, string(stateQueued))
		addKid("", w.Key)
		h.queued++
	}
	h.kids = make([]any, 0, 2*len(kidOrder))
	for _, p := range kidOrder {
		b, _ := json.Marshal(kids[p])
		h.kids = append(h.kids, p, string(b))
	}
	return h, nil
}

// writeItems replaces the item hashes of an import with h, in one
// transaction, each with the state TTL.
func (s *Store) writeItems(ctx context.Context, k keys.Import, h hashes) error {
	ttl := s.ttl
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		// Leftovers of a Create that died half-way.
		p.Del(ctx, k.Spec, k.Kids, k.Parent, k.State, k.IDs, k.Failed)
		hsetChunks(ctx, p, k.Spec, h.specs)
		hsetChunks(ctx, p, k.State, h.states)
		hsetChunks(ctx, p, k.Parent, h.parents)
		hsetChunks(ctx, p, k.Kids, h.kids)
		for _, key := range []string{k.Spec, k.State, k.Parent, k.Kids} {
			p.PExpire(ctx, key, ttl)
		}
		return nil
	})
	return err
}

func hsetChunks(ctx context.Context, p redis.Pipeliner, key string, fields []any) {
	for len(fields) > 0 {
		n := min(len(fields), 2*chunk)
		args := make([]any, 0, n)
		args = append(args, fields[:n]...)
		p.HSet(ctx, key, args...)
		fields = fields[n:]
	}
}

// checkExisting reports whether the import exists with this content; an
// import with other content or another portal is an ErrConflict.
func (s *Store) checkExisting(ctx context.Context, id, portal, digest string) (bool, error) {
	vals, err := s.rdb.HMGet(ctx, s.keys(id).Meta, "digest", "portal").Result()
	if err != nil {
		return false, fmt.Errorf("import %s: read meta: %w", id, err)
	}
	if vals[0] == nil {
		return false, nil
	}
	if d, _ := vals[0].(string); d != digest {
		return true, fmt.Errorf("%w: import %s holds another file (digest %s, this file %s)", ErrConflict, id, d, digest)
	}
	if p, _ := vals[1].(string); p != portal {
		return true, fmt.Errorf("%w: import %s belongs to portal %q, not %q", ErrConflict, id, p, portal)
	}
	return true, nil
}

package store

// What the reconcile step (tasks) needs of an import's state: every item as
// the file gave it, with its state and recorded ID; adopting the items the
// portal already holds; marking the items an update changed; and whether the
// import was reconciled.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Entry is an item of an import with its state: Item as the file gave it
// (ParentID is the file's parent_id of a root, 0 otherwise), and the portal
// ID when the item has one.
type Entry struct {
	Item
	// State is "waiting", "pending", "created" or "failed".
	State string
	// ID is the portal ID of a created (or adopted) item.
	ID      int64
	Adopted bool
}

// stateNames names the state letters for Entry.State.
var stateNames = map[string]string{
	string(stateWaiting): "waiting", string(stateQueued): "pending",
	string(stateCreated): "created", string(stateFailed): "failed",
}

// Entries returns every item of the import with its state, in no
// particular order (the caller orders them: importer.File.Order). Three
// reads in one round trip. An unknown import wraps ErrNotFound.
func (s *Store) Entries(ctx context.Context, id string) ([]Entry, error) {
	k := s.keys(id)
	var meta *redis.IntCmd
	var specs, states, ids, marks *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.Exists(ctx, k.Meta)
		specs = p.HGetAll(ctx, k.Spec)
		states = p.HGetAll(ctx, k.State)
		ids = p.HGetAll(ctx, k.IDs)
		marks = p.HGetAll(ctx, k.Marks)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import %s: read items: %w", id, err)
	}
	if meta.Val() == 0 {
		return nil, fmt.Errorf("import %s: %w", id, ErrNotFound)
	}
	out := make([]Entry, 0, len(specs.Val()))
	for key, raw := range specs.Val() {
		var sp spec
		if err := json.Unmarshal([]byte(raw), &sp); err != nil {
			return nil, fmt.Errorf("import %s: spec of %s: %w", id, key, err)
		}
		e := Entry{Item: sp.item(key), State: stateNames[states.Val()[key]], Adopted: marks.Val()["a:"+key] != ""}
		if v, ok := ids.Val()[key]; ok {
			if e.ID, err = strconv.ParseInt(v, 10, 64); err != nil {
				return nil, fmt.Errorf("import %s: ID of %s: %w", id, key, err)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// Adoption is an item the portal already holds, under ID.
type Adoption struct {
	Key string
	ID  int64
}

// Adopt records items the portal already holds as created with its IDs,
// marked adopted; items created already are left alone. It does not return
// their children: call Releasable afterwards. It returns how many items it
// adopted. Writes go in chunks of 500 items, one script each.
func (s *Store) Adopt(ctx context.Context, id string, as []Adoption) (int, error) {
	total := 0
	for len(as) > 0 {
		n := min(len(as), 500)
		args := make([]any, 0, 1+2*n)
		args = append(args, s.ttlMS())
		for _, a := range as[:n] {
			args = append(args, a.Key, a.ID)
		}
		as = as[n:]
		got, err := adoptScript.Run(ctx, s.rdb, s.keys(id).List(), args...).Int64()
		if err != nil {
			return total, fmt.Errorf("import %s: adopt items: %w", id, err)
		}
		if got < 0 {
			return total, scriptErr(id, "", got)
		}
		total += int(got)
	}
	return total, nil
}

// MarkUpdated records that the import changed the fields of items in the
// portal (enqueue import --update). It returns how many were not marked
// before.
func (s *Store) MarkUpdated(ctx context.Context, id string, keys ...string) (int, error) {
	return s.markItems(ctx, markUpdatedScript, "mark updated", id, keys)
}

// reconciledField is the meta hash field set once the import was
// reconciled with its portal.
const reconciledField = "reconciled"

// SetReconciled records that the import was reconciled with its portal (its
// existing objects adopted, the rest released).
func (s *Store) SetReconciled(ctx context.Context, id string) error {
	if err := s.rdb.HSet(ctx, s.keys(id).Meta, reconciledField, 1).Err(); err != nil {
		return fmt.Errorf("import %s: mark reconciled: %w", id, err)
	}
	return nil
}

// Reconciled reports whether the import was reconciled with its portal.
func (s *Store) Reconciled(ctx context.Context, id string) (bool, error) {
	v, err := s.rdb.HGet(ctx, s.keys(id).Meta, reconciledField).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("import %s: read reconciled: %w", id, err)
	}
	return v == "1", nil
}

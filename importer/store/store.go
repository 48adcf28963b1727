// Package store is the Redis side of an import: the state that lets
// workers create a tree parents-first without holding the whole tree in the
// queue. It knows nothing of asynq: the tasks package enqueues what the
// Store says is ready and reports back what the portal created. The file
// model it stores is package importer's, which has no Redis dependency.
//
// The keys are named in internal/keys (Space.Import); the Lua scripts that
// change them atomically are in scripts.go.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/keys"
)

// Kind says what an import item creates.
type Kind string

// The kinds of import items.
const (
	KindDepartment Kind = "department"
	KindWorkplace  Kind = "workplace"
)

// Item is one department or workplace of an import, as the Store hands it
// out to be enqueued.
type Item struct {
	Key  string
	Kind Kind
	// Name is the department's name or the workplace's title.
	Name string
	// Parent is the key of the parent department in the file ("" for a
	// department with parent_id and for workplaces).
	Parent string
	// ParentID is the portal ID of the parent department: the file's
	// parent_id for a root (0: a new top-level department), the parent's
	// created ID for a released child. Unused for workplaces.
	ParentID int64
	Sort     int
	Head     int64
	TypeIDs  []int64
}

// Counts are the numbers of items of an import by state. Every item is in
// exactly one state, so Created+Adopted+Pending+Waiting+Failed == Total;
// Updated counts items of Created or Adopted whose fields the import
// changed.
type Counts struct {
	Total int `json:"total"`
	// Created items were created by this import.
	Created int `json:"created"`
	// Adopted items existed in the portal already (before the import, or
	// created by an earlier run whose answer was lost) and were taken over
	// with their ID instead of being created a second time.
	Adopted int `json:"adopted"`
	// Updated counts the items whose fields the import changed in the
	// portal (enqueue import --update); they are counted in Adopted (or
	// Created) too.
	Updated int `json:"updated"`
	// Pending items are queued (or about to be): their task may run now.
	Pending int `json:"pending"`
	// Waiting items wait for their parent's ID.
	Waiting int `json:"waiting"`
	Failed  int `json:"failed"`
}

// Status is a snapshot of an import. Its JSON encoding is the stable
// `enqueue status --json` shape of design.md:
//
//	{"id":..,"portal":..,"done":..,"counts":{"total","created","pending","waiting","failed"},
//	 "created":{KEY:ID},"failed":{KEY:"reason"}}
type Status struct {
	ID     string `json:"id"`
	Portal string `json:"portal"`
	// Done is true when nothing is pending or waiting: every item is
	// created or failed.
	Done   bool   `json:"done"`
	Counts Counts `json:"counts"`
	// Created maps the key of every item with a portal ID (created or
	// adopted) to that ID.
	Created map[string]int64 `json:"created"`
	// Adopted and Updated list the keys of the adopted and updated items
	// (omitted when none).
	Adopted []string `json:"adopted,omitempty"`
	Updated []string `json:"updated,omitempty"`
	// Failed maps a key to the reason; items failed because an ancestor
	// failed read "parent KEY failed: REASON", KEY being the item whose own
	// task failed.
	Failed map[string]string `json:"failed"`
	// CreatedAt is when the import was first submitted (not in the JSON
	// shape, which is a fixed interface).
	CreatedAt time.Time `json:"-"`
	// Blocked, when set, says why the pending items cannot progress now:
	// the import's portal is unavailable (absent from the JSON otherwise).
	// The store does not fill it: tasks.Imports.Status does.
	Blocked *Blocked `json:"blocked,omitempty"`
}

// Blocked is why an import's portal cannot be called now.
type Blocked struct {
	// Reason is the one-line summary: "portal NAME unavailable: CODE".
	Reason string `json:"reason"`
	// Code and Description are the portal's answer.
	Code        string `json:"code"`
	Description string `json:"description,omitempty"`
	// Fix says what an operator must do.
	Fix string `json:"fix,omitempty"`
	// Since is when the portal became unavailable; NextCheck when a worker
	// tries it again.
	Since     time.Time `json:"since"`
	NextCheck time.Time `json:"next_check"`
}

// Errors of the Store; callers branch on them with errors.Is. An invalid
// import ID wraps importer.ErrInvalidID (see importer.ValidateID).
var (
	// ErrNotFound: no import with that ID (never submitted, or expired).
	ErrNotFound = errors.New("import not found")
	// ErrConflict: an import with that ID exists with other content or for
	// another portal.
	ErrConflict = errors.New("import ID already used for different content")
	// ErrUnknownItem: the import has no item with that key.
	ErrUnknownItem = errors.New("no such item in the import")
)

// DefaultStateTTL is how long an import's state is kept after its last write.
const DefaultStateTTL = 30 * 24 * time.Hour

// Store keeps the state of imports in Redis. All keys of one import share
// the hash tag {ID}, so every script touches one cluster slot, and every key
// carries a TTL refreshed on each write. Store is safe for concurrent use by
// any number of goroutines and processes.
type Store struct {
	rdb    redis.UniversalClient
	space  keys.Space
	ttl    time.Duration
	logger *slog.Logger
	// lockTTL bounds how long a crashed Create blocks another.
	lockTTL time.Duration
}

// Option configures a Store.
type Option func(*Store)

// WithStateTTL sets how long an import's state is kept after its last write
// (default [DefaultStateTTL]). Non-positive values are ignored.
func WithStateTTL(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.ttl = d
		}
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.logger = l
		}
	}
}

// New returns a Store whose keys start with prefix ("" means the default
// prefix of every b24queue key, which the worker uses too). It does not
// contact Redis.
func New(rdb redis.UniversalClient, prefix string, opts ...Option) *Store {
	s := &Store{rdb: rdb, space: keys.New(prefix), ttl: DefaultStateTTL, logger: slog.New(slog.DiscardHandler), lockTTL: 2 * time.Minute}
	for _, o := range opts {
		o(s)
	}
	return s
}

// keys returns the keys of import id; their List is the KEYS of every
// script.
func (s *Store) keys(id string) keys.Import { return s.space.Import(id) }

func (s *Store) ttlMS() int64 { return s.ttl.Milliseconds() }

// spec is the compact JSON of an item in Redis.
type spec struct {
	K  string  `json:"k"` // "d" or "w"
	N  string  `json:"n"`
	P  string  `json:"p,omitempty"`
	PI int64   `json:"pi,omitempty"`
	S  int     `json:"s,omitempty"`
	H  int64   `json:"h,omitempty"`
	T  []int64 `json:"t,omitempty"`
}

func (sp spec) item(key string) Item {
	it := Item{Key: key, Kind: KindDepartment, Name: sp.N, Parent: sp.P, ParentID: sp.PI, Sort: sp.S, Head: sp.H, TypeIDs: sp.T}
	if sp.K == "w" {
		it.Kind = KindWorkplace
	}
	return it
}

// Existing reports the portal ID recorded for the item, if any. An unknown
// import wraps [ErrNotFound].
func (s *Store) Existing(ctx context.Context, id, key string) (int64, bool, error) {
	k := s.keys(id)
	var meta *redis.IntCmd
	var got *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.Exists(ctx, k.Meta)
		got = p.HGet(ctx, k.IDs, key)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, false, fmt.Errorf("import %s: read ID of %s: %w", id, key, err)
	}
	if meta.Val() == 0 {
		return 0, false, fmt.Errorf("import %s: %w", id, ErrNotFound)
	}
	v, err := got.Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("import %s: ID of %s: %w", id, key, err)
	}
	return n, true, nil
}

// scriptErr maps the negative codes the scripts return.
func scriptErr(id, key string, code int64) error {
	switch code {
	case codeNoImport:
		return fmt.Errorf("import %s: %w", id, ErrNotFound)
	case codeNoItem:
		return fmt.Errorf("import %s: %w: %q", id, ErrUnknownItem, key)
	}
	return fmt.Errorf("import %s: unexpected script answer %d", id, code)
}

// Complete records that the item was created with portalID, atomically with
// the state change and the counters, and returns the item's children that
// still wait for it, with ParentID set to the recorded ID. Only the first ID
// recorded for an item counts: a later Complete with another ID (a
// duplicate created in the portal) keeps the first, logs a warning, and
// releases the children under the first. Complete is idempotent: called
// again (a retried parent), it returns the children not yet marked queued,
// so a crash between Complete and enqueueing the children loses nothing.
// A failed item that gets completed becomes created.
func (s *Store) Complete(ctx context.Context, id, key string, portalID int64) ([]Item, error) {
	res, err := completeScript.Run(ctx, s.rdb, s.keys(id).List(), s.ttlMS(), key, portalID).Slice()
	if err != nil {
		return nil, fmt.Errorf("import %s: complete %s: %w", id, key, err)
	}
	if code, ok := res[0].(int64); ok {
		return nil, scriptErr(id, key, code)
	}
	recorded, err := strconv.ParseInt(res[0].(string), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("import %s: ID of %s: %w", id, key, err)
	}
	if recorded != portalID {
		s.logger.WarnContext(ctx, "import item created twice in the portal; keeping the first ID",
			"import_id", id, "key", key, "kept_id", recorded, "other_id", portalID)
	}
	children := make([]Item, 0, (len(res)-1)/2)
	for i := 1; i+1 < len(res); i += 2 {
		k, _ := res[i].(string)
		raw, _ := res[i+1].(string)
		var sp spec
		if err := json.Unmarshal([]byte(raw), &sp); err != nil {
			return nil, fmt.Errorf("import %s: spec of %s: %w", id, k, err)
		}
		it := sp.item(k)
		it.ParentID = recorded
		children = append(children, it)
	}
	return children, nil
}

// MarkQueued moves items from waiting to queued once their tasks are
// enqueued. Items in any other state are left alone (a fast child may be
// created before its parent's MarkQueued). It returns how many moved.
func (s *Store) MarkQueued(ctx context.Context, id string, keys ...string) (int, error) {
	return s.markItems(ctx, markQueuedScript, "mark queued", id, keys)
}

// markItems runs script, which takes the import's keys, the TTL in ms and
// item keys and returns how many items it changed (or a negative error
// code), on keys of import id. what names it in errors.
func (s *Store) markItems(ctx context.Context, script *redis.Script, what, id string, keys []string) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	args := make([]any, 0, len(keys)+1)
	args = append(args, s.ttlMS())
	for _, k := range keys {
		args = append(args, k)
	}
	n, err := script.Run(ctx, s.rdb, s.keys(id).List(), args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("import %s: %s: %w", id, what, err)
	}
	if n < 0 {
		return 0, scriptErr(id, "", n)
	}
	return int(n), nil
}

// Fail records a final failure of the item with reason and fails every
// descendant not yet created with "parent KEY failed: REASON", KEY being
// this item, so that nothing waits forever. The walk is iterative in Lua
// and atomic. It returns how many items changed to failed: 0 when the item
// was created already (a created item is never failed) or failed before
// (Fail is idempotent and keeps the first reason).
func (s *Store) Fail(ctx context.Context, id, key, reason string) (int, error) {
	n, err := failScript.Run(ctx, s.rdb, s.keys(id).List(), s.ttlMS(), key, reason).Int64()
	if err != nil {
		return 0, fmt.Errorf("import %s: fail %s: %w", id, key, err)
	}
	if n < 0 {
		return 0, scriptErr(id, key, n)
	}
	return int(n), nil
}

// Status returns a snapshot of the import (three reads in one round trip,
// not atomic with concurrent writers: counts come from the meta hash and are
// exact; the maps may be a moment newer or older). An unknown import wraps
// [ErrNotFound].
func (s *Store) Status(ctx context.Context, id string) (Status, error) {
	k := s.keys(id)
	var meta, ids, failed, marks *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HGetAll(ctx, k.Meta)
		ids = p.HGetAll(ctx, k.IDs)
		failed = p.HGetAll(ctx, k.Failed)
		marks = p.HGetAll(ctx, k.Marks)
		return nil
	})
	if err != nil {
		return Status{}, fmt.Errorf("import %s: read status: %w", id, err)
	}
	sum, ok := summaryOf(id, meta.Val())
	if !ok {
		return Status{}, fmt.Errorf("import %s: %w", id, ErrNotFound)
	}
	st := Status{
		ID:        id,
		Portal:    sum.Portal,
		Done:      sum.Done,
		Counts:    sum.Counts,
		Created:   make(map[string]int64, len(ids.Val())),
		Failed:    failed.Val(),
		CreatedAt: sum.CreatedAt,
	}
	if st.Failed == nil {
		st.Failed = map[string]string{}
	}
	for k, v := range ids.Val() {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Status{}, fmt.Errorf("import %s: ID of %s: %w", id, k, err)
		}
		st.Created[k] = n
	}
	for f := range marks.Val() {
		switch {
		case len(f) > 2 && f[:2] == "a:":
			st.Adopted = append(st.Adopted, f[2:])
		case len(f) > 2 && f[:2] == "u:":
			st.Updated = append(st.Updated, f[2:])
		}
	}
	slices.Sort(st.Adopted)
	slices.Sort(st.Updated)
	return st, nil
}

// Portal returns the portal the import goes to.
func (s *Store) Portal(ctx context.Context, id string) (string, error) {
	p, err := s.rdb.HGet(ctx, s.keys(id).Meta, "portal").Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("import %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("import %s: read portal: %w", id, err)
	}
	return p, nil
}

// Releasable returns every item whose task should exist now: queued items
// (roots, workplaces and released children) and waiting items whose parent
// is already created (children a crashed release left behind), each with
// ParentID resolved. Created and failed items are skipped. Submit enqueues
// these (deterministic task IDs make that a no-op for tasks that exist) and
// then calls MarkQueued. One script, O(items).
func (s *Store) Releasable(ctx context.Context, id string) ([]Item, error) {
	res, err := releasableScript.Run(ctx, s.rdb, s.keys(id).List()).Slice()
	if err != nil {
		return nil, fmt.Errorf("import %s: list releasable items: %w", id, err)
	}
	if len(res) == 1 {
		if code, ok := res[0].(int64); ok {
			return nil, scriptErr(id, "", code)
		}
	}
	items := make([]Item, 0, len(res)/3)
	for i := 0; i+2 < len(res); i += 3 {
		k, _ := res[i].(string)
		raw, _ := res[i+1].(string)
		pid, _ := res[i+2].(string)
		var sp spec
		if err := json.Unmarshal([]byte(raw), &sp); err != nil {
			return nil, fmt.Errorf("import %s: spec of %s: %w", id, k, err)
		}
		it := sp.item(k)
		if pid != "" {
			if it.ParentID, err = strconv.ParseInt(pid, 10, 64); err != nil {
				return nil, fmt.Errorf("import %s: parent ID of %s: %w", id, k, err)
			}
		}
		items = append(items, it)
	}
	return items, nil
}

// Failures returns the keys of the failed items.
func (s *Store) Failures(ctx context.Context, id string) ([]string, error) {
	failed, err := s.rdb.HKeys(ctx, s.keys(id).Failed).Result()
	if err != nil {
		return nil, fmt.Errorf("import %s: list failures: %w", id, err)
	}
	return failed, nil
}

// ResetFailed gives every failed item another chance: it forgets the
// failures, makes the items whose parent is created (or that have none)
// queued, and the rest waiting on their (reset) parents. It returns the
// keys that were reset. The caller must make sure no task of those items
// remains in the queue's archive (so that enqueueing under the same task ID
// works) before it enqueues [Store.Releasable].
func (s *Store) ResetFailed(ctx context.Context, id string) ([]string, error) {
	res, err := resetFailedScript.Run(ctx, s.rdb, s.keys(id).List(), s.ttlMS()).Slice()
	if err != nil {
		return nil, fmt.Errorf("import %s: reset failed items: %w", id, err)
	}
	if len(res) == 1 {
		if code, ok := res[0].(int64); ok {
			return nil, scriptErr(id, "", code)
		}
	}
	reset := make([]string, 0, len(res))
	for _, v := range res {
		k, _ := v.(string)
		reset = append(reset, k)
	}
	return reset, nil
}

// Delete removes the import's state.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, s.keys(id).List()...).Err(); err != nil {
		return fmt.Errorf("import %s: delete: %w", id, err)
	}
	return nil
}

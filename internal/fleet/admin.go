package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/limiter"
	"github.com/b24queue/b24queue/tasks"
)

// Errors of Admin that callers translate (exit code, HTTP status).
var (
	// ErrConfigured: the portal is one of a live worker's own portals
	// (B24_WEBHOOK_URL, B24_PORTALS_FILE); change it there.
	ErrConfigured = errors.New("portal is configured on a worker (B24_WEBHOOK_URL or B24_PORTALS_FILE), not registered")
	// ErrHasWork: the portal's queue still has tasks; remove with force to
	// delete them.
	ErrHasWork = errors.New("portal still has tasks in its queue")
	// ErrUnknownPortal: no live worker has the portal and it is not
	// registered.
	ErrUnknownPortal = errors.New("no such portal")
	// ErrTasksRunning: a removed portal's queue could not be deleted
	// because some of its tasks still ran; they end on their own.
	ErrTasksRunning = errors.New("tasks of the removed portal still run")
)

// Sources of a PortalStatus.
const (
	SourceConfig     = "config"
	SourceRegistered = "registered"
)

// PortalStatus is what `enqueue portal status` and GET /v1/portals tell
// about a portal: never a secret. Its JSON is a stable interface.
type PortalStatus struct {
	Name string `json:"name"`
	// Source is SourceConfig (a worker's own portal) or SourceRegistered.
	Source string `json:"source"`
	// Record is set for a registered portal.
	Record *Record `json:"registration,omitempty"`
	// Active is true while its queue has work (workers run it then).
	Active bool `json:"active"`
	// Owners are the live workers that run its queue while it is active.
	Owners []string `json:"owners,omitempty"`
	// Available is false while the portal answers with a portal-level
	// error (a revoked credential, a deleted, moved or blocked portal):
	// its tasks wait, a probe retries by itself, Unavailable says why.
	Available   bool         `json:"available"`
	Unavailable *Unavailable `json:"unavailable,omitempty"`
}

// Unavailable is why a portal is unavailable and what to do.
type Unavailable struct {
	Code        string    `json:"code"`
	Description string    `json:"description,omitempty"`
	Method      string    `json:"method,omitempty"`
	Since       time.Time `json:"since"`
	NextProbe   time.Time `json:"next_probe,omitzero"`
	Probes      int       `json:"probes"`
	// Fix says what an operator should do.
	Fix string `json:"fix,omitempty"`
}

// Admin is what the enqueue command and the API do with portals: register,
// list, look at, remove and resume them. Both only translate its results.
type Admin struct {
	rdb       redis.UniversalClient
	prefix    string
	registry  *Registry
	members   Members
	activity  tasks.Activity
	inspector *asynq.Inspector
	replicas  int
	httpHosts []string
}

// NewAdmin returns the portal administration of the fleet under prefix.
// replicas is the fleet's WORKER_PORTAL_REPLICAS (for Owners); httpHosts
// are the hosts a registration may reach over plain http besides loopback
// (B24_INSECURE_HTTP_HOSTS).
func NewAdmin(rdb redis.UniversalClient, prefix string, replicas int, httpHosts []string) *Admin {
	return &Admin{rdb: rdb, prefix: prefix, registry: NewRegistry(rdb, prefix), members: NewMembers(rdb, prefix),
		activity: tasks.NewActivity(rdb, prefix), inspector: asynq.NewInspectorFromRedisClient(rdb),
		replicas: replicas, httpHosts: httpHosts}
}

// Register validates and registers portal name from body, one
// B24_PORTALS_FILE entry as JSON (config.RegistrationHelp). Limits it leaves
// unset follow each worker's B24_RATE etc. A bad body is a
// *config.UsageError; a name of a worker's configuration ErrConfigured.
// created tells a new name from a replaced registration.
func (a *Admin) Register(ctx context.Context, name string, body []byte) (rec Record, created bool, err error) {
	p, err := config.ParsePortal(name, body, config.Limits{}, a.httpHosts)
	if err != nil {
		return Record{}, false, err
	}
	name = p.Name
	live, err := a.members.Live(ctx, time.Now())
	if err != nil {
		return Record{}, false, err
	}
	for _, m := range live {
		if m.Configured(name) {
			return Record{}, false, fmt.Errorf("register portal %s: %w", name, ErrConfigured)
		}
	}
	rec, created, err = a.registry.Add(ctx, p)
	if err != nil {
		return Record{}, false, err
	}
	// New credentials: a portal that was unavailable for the old ones is
	// tried again at once. The registration stands if this fails: the
	// workers' probe resumes the portal in a few minutes at most.
	_, _ = a.resume(ctx, name)
	return rec, created, nil
}

// List returns every portal the fleet knows: the live workers' own and
// the registered ones, sorted by name.
func (a *Admin) List(ctx context.Context) ([]PortalStatus, error) {
	live, recs, active, err := a.read(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*PortalStatus{}
	for _, m := range live {
		for _, n := range m.Portals {
			byName[n] = &PortalStatus{Name: n, Source: SourceConfig}
		}
	}
	for i := range recs {
		if _, ok := byName[recs[i].Name]; !ok {
			byName[recs[i].Name] = &PortalStatus{Name: recs[i].Name, Source: SourceRegistered, Record: &recs[i]}
		}
	}
	out := make([]PortalStatus, 0, len(byName))
	for _, st := range byName {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(x, y PortalStatus) int { return strings.Compare(x.Name, y.Name) })
	if err := a.fill(ctx, out, live, active); err != nil {
		return nil, err
	}
	return out, nil
}

// Status returns one portal's status, or ErrUnknownPortal.
func (a *Admin) Status(ctx context.Context, name string) (PortalStatus, error) {
	live, err := a.members.Live(ctx, time.Now())
	if err != nil {
		return PortalStatus{}, err
	}
	st, err := a.find(ctx, name, live)
	if err != nil {
		return PortalStatus{}, err
	}
	var active []string
	if ok, err := a.activity.Has(ctx, name); err != nil {
		return PortalStatus{}, err
	} else if ok {
		active = []string{name}
	}
	list := []PortalStatus{st}
	if err := a.fill(ctx, list, live, active); err != nil {
		return PortalStatus{}, err
	}
	return list[0], nil
}

// find returns portal name with its source (and record when registered),
// or ErrUnknownPortal.
func (a *Admin) find(ctx context.Context, name string, live []Member) (PortalStatus, error) {
	for _, m := range live {
		if m.Configured(name) {
			return PortalStatus{Name: name, Source: SourceConfig}, nil
		}
	}
	rec, ok, err := a.registry.Get(ctx, name)
	if err != nil {
		return PortalStatus{}, err
	}
	if !ok {
		return PortalStatus{}, fmt.Errorf("portal %s: %w", name, ErrUnknownPortal)
	}
	return PortalStatus{Name: name, Source: SourceRegistered, Record: &rec}, nil
}

// findLive is find with the live members read first.
func (a *Admin) findLive(ctx context.Context, name string) (PortalStatus, error) {
	live, err := a.members.Live(ctx, time.Now())
	if err != nil {
		return PortalStatus{}, err
	}
	return a.find(ctx, name, live)
}

// read returns the live members, the registered records and the active set.
func (a *Admin) read(ctx context.Context) ([]Member, []Record, []string, error) {
	live, err := a.members.Live(ctx, time.Now())
	if err != nil {
		return nil, nil, nil, err
	}
	recs, err := a.registry.List(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	active, err := a.activity.Portals(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return live, recs, active, nil
}

// availabilityChunk bounds the reads of one pipeline.
const availabilityChunk = 1000

// fill sets the activity, owners and availability of each status in place.
func (a *Admin) fill(ctx context.Context, list []PortalStatus, live []Member, active []string) error {
	isActive := make(map[string]bool, len(active))
	for _, n := range active {
		isActive[n] = true
	}
	for i := range list {
		st := &list[i]
		st.Active = isActive[st.Name]
		if st.Active {
			st.Owners = Owners(st.Name, st.Source == SourceRegistered, live, a.replicas)
		}
	}
	names := make([]string, len(list))
	for i := range list {
		names[i] = list[i].Name
	}
	down := map[string]limiter.Unavailability{}
	for start := 0; start < len(names); start += availabilityChunk {
		part, err := limiter.ReadAvailabilities(ctx, a.rdb, a.prefix, names[start:min(start+availabilityChunk, len(names))])
		if err != nil {
			return err
		}
		maps.Copy(down, part)
	}
	for i := range list {
		u, isDown := down[list[i].Name]
		list[i].Available = !isDown
		if isDown {
			list[i].Unavailable = &Unavailable{Code: u.Code, Description: u.Description, Method: u.Method,
				Since: u.Since, NextProbe: u.NextProbe, Probes: u.Probes, Fix: tasks.FixFor(u.Code)}
		}
	}
	return nil
}

// Remove unregisters portal name. While its queue has tasks it refuses
// with ErrHasWork unless force, which deletes them (they are lost: use it
// for a portal that is gone). Workers stop running its queue within a
// second or two. It returns how many tasks were deleted.
func (a *Admin) Remove(ctx context.Context, name string, force bool) (int, error) {
	st, err := a.findLive(ctx, name)
	if err != nil {
		return 0, err
	}
	if st.Source != SourceRegistered {
		return 0, fmt.Errorf("remove portal %s: %w", name, ErrConfigured)
	}
	busy, err := tasks.QueueHasWork(ctx, a.rdb, name)
	if err != nil {
		return 0, err
	}
	if busy && !force {
		return 0, fmt.Errorf("remove portal %s: %w (remove it with force to delete them)", name, ErrHasWork)
	}
	if err := a.registry.Remove(ctx, name); err != nil {
		return 0, err
	}
	// A task enqueued between the look and the removal could never run
	// now: look again, and delete what is there whatever force says.
	if busy, err = tasks.QueueHasWork(ctx, a.rdb, name); err != nil {
		return 0, err
	}
	if !busy {
		return 0, a.rdb.SRem(ctx, a.activity.Key(), name).Err()
	}
	return a.deleteQueue(ctx, name)
}

// removeWait bounds how long Remove waits for running tasks of a removed
// portal to end before it deletes the queue.
const removeWait = 30 * time.Second

// deleteQueue deletes the queue of a removed portal once no task of it
// runs any more (asynq refuses to delete a queue with active tasks; the
// workers stop running it within seconds of the removal).
func (a *Admin) deleteQueue(ctx context.Context, name string) (int, error) {
	q := tasks.QueueName(name)
	deadline := time.Now().Add(removeWait)
	for {
		info, err := a.inspector.GetQueueInfo(q)
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("remove portal %s: read its queue: %w", name, err)
		}
		// The work deleted; kept results (completed, archived) go too.
		n := info.Pending + info.Active + info.Scheduled + info.Retry + info.Aggregating
		err = a.inspector.DeleteQueue(q, true)
		if err == nil || errors.Is(err, asynq.ErrQueueNotFound) {
			return n, a.rdb.SRem(ctx, a.activity.Key(), name).Err()
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("remove portal %s (removed): %w after %s; delete its queue %s from the dashboard once they ended (%v)",
				name, ErrTasksRunning, removeWait, q, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Resume makes portal name available again at once (an operator fixed its
// credential), wakes its parked tasks and marks it active. It reports
// whether the portal was unavailable; an unknown portal is ErrUnknownPortal.
func (a *Admin) Resume(ctx context.Context, name string) (bool, error) {
	if _, err := a.findLive(ctx, name); err != nil {
		return false, err
	}
	return a.resume(ctx, name)
}

// resume is Resume of a portal known to exist.
func (a *Admin) resume(ctx context.Context, name string) (bool, error) {
	was, err := limiter.Resume(ctx, a.rdb, a.prefix, name)
	if err != nil {
		return false, err
	}
	// asynq's inspector errs on a queue that never had a task.
	if busy, err := tasks.QueueHasWork(ctx, a.rdb, name); err != nil {
		return was, err
	} else if busy {
		if err := tasks.WakeParked(a.inspector, name); err != nil {
			return was, fmt.Errorf("resume portal %s: wake its tasks: %w", name, err)
		}
	}
	return was, a.activity.Mark(ctx, name)
}

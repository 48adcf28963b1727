package cli

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/b24queue/b24queue/internal/fleet"
	"github.com/b24queue/b24queue/tasks"
)

// The command asks the fleet which portals live workers serve (fleet.Known:
// their own portals and the registered ones) to refuse a portal nobody
// serves, and to tell the user when what they wait for cannot move.

// defaultServedInterval is how often --wait asks again.
const defaultServedInterval = 5 * time.Second

// served returns the portals live workers serve, sorted (empty: no worker
// is up).
func (e *env) served(ctx context.Context, conn *connection) ([]string, error) {
	names, err := fleet.Known(conn.rdb, e.app.Prefix)(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the workers in Redis at %s: %w", conn.cfg.Redis, err)
	}
	return names, nil
}

// producer returns a Producer on conn that refuses a portal missing from
// served while served is not empty, unless the App accepts any portal.
func (e *env) producer(conn *connection, im *tasks.Imports, served []string) *tasks.Producer {
	// Marks the portal active after each enqueue, so the fleet starts on
	// it at once (tasks.Activity).
	opts := []tasks.ProducerOption{tasks.WithActivity(tasks.NewActivity(conn.rdb, e.app.Prefix))}
	if !e.app.AnyPortal {
		known := func(context.Context) ([]string, error) { return served, nil }
		opts = append(opts, tasks.WithKnownPortals(known))
	}
	return tasks.NewProducer(conn.client, im, opts...)
}

// NotServed is what the command says when no live worker serves portal.
func NotServed(portal string) string { return "no worker is serving portal " + portal }

// warnUnserved tells the user on stderr that what they enqueued (what)
// waits until a worker serves portal, when none does now.
func (e *env) warnUnserved(cmd, portal string, served []string, what string) {
	if slices.Contains(served, portal) {
		return
	}
	fmt.Fprintf(e.stderr, "enqueue %s: %s: %s waits in Redis until a worker with this portal configured starts\n",
		cmd, NotServed(portal), what)
}

// servedWatch remembers whether a portal was served when last asked, and
// asks again at most every interval: --wait calls check on every poll.
type servedWatch struct {
	e        *env
	conn     *connection
	portal   string
	interval time.Duration
	asked    time.Time
	served   bool
	known    bool // asked at least once
}

func (e *env) watchServed(conn *connection, portal string) *servedWatch {
	iv := e.app.ServedInterval
	if iv <= 0 {
		iv = defaultServedInterval
	}
	return &servedWatch{e: e, conn: conn, portal: portal, interval: iv}
}

// check asks again when due and reports a change on stderr: the first
// answer only when the portal is not served, later ones whenever it
// changes. Errors are ignored: the progress display reports Redis trouble.
func (w *servedWatch) check(ctx context.Context, cmd string) {
	now := time.Now()
	if w.known && now.Sub(w.asked) < w.interval {
		return
	}
	names, err := w.e.served(ctx, w.conn)
	if err != nil {
		return
	}
	served := slices.Contains(names, w.portal)
	switch {
	case !w.known && !served, w.known && w.served && !served:
		fmt.Fprintf(w.e.stderr, "enqueue %s: %s: nothing moves until a worker with this portal configured starts\n", cmd, NotServed(w.portal))
	case w.known && !w.served && served:
		fmt.Fprintf(w.e.stderr, "enqueue %s: a worker serves portal %s now\n", cmd, w.portal)
	}
	w.asked, w.served, w.known = now, served, true
}

// isServed asks once, with a fresh short context (the command's may be
// cancelled already, after Ctrl-C).
func (w *servedWatch) isServed() (served, known bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	names, err := w.e.served(ctx, w.conn)
	if err != nil {
		return false, false
	}
	return slices.Contains(names, w.portal), true
}

package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/internal/testutil"
)

// batchSetup adds batch mode to a bundle: an Imports that groups item tasks
// (sharing the bundle's state, so b.waitDone and b.imports.Status see it)
// and a Handler reporting to it.
type batchSetup struct {
	*bundle
	bimports *Imports
	bhandler *Handler
}

func withBatch(t testing.TB, b *bundle) *batchSetup {
	t.Helper()
	bs := &batchSetup{bundle: b}
	bs.bimports = NewImports(b.rdb, b.client, b.prefix, b.logger, WithBatch(true))
	bs.bhandler = b.newHandler(t, bs.bimports)
	if os.Getenv("BATCH_DEBUG") != "" {
		// Every batch and requeue on stderr.
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		h, err := NewHandler(HandlerConfig{Portals: []*Portal{b.b24portal}, Claims: b.claims, Imports: bs.bimports, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		bs.bhandler = h
	}
	return bs
}

// startBatch runs servers asynq servers (a fleet of workers sharing Redis,
// the limiter and the import state) configured like a batch-mode worker:
// cfg's aggregation settings with NewBatchAggregator, BatchMux, RetryDelay
// (with transient backoff shortened as in the fleet tests) and IsFailure.
// They are shut down on t.Cleanup.
func (bs *batchSetup) startBatch(t testing.TB, cfg BatchConfig, servers int) {
	t.Helper()
	for range servers {
		ac := asynq.Config{
			Concurrency:              10,
			Queues:                   map[string]int{bs.queue: 1},
			RetryDelayFunc:           fastRetryDelay,
			IsFailure:                IsFailure,
			DelayedTaskCheckInterval: 200 * time.Millisecond,
			TaskCheckInterval:        50 * time.Millisecond,
			ShutdownTimeout:          2 * time.Second,
			LogLevel:                 asynq.ErrorLevel,
			Logger:                   bundleAsynqLogger{},
		}
		cfg.Apply(&ac)
		srv := asynq.NewServerFromRedisClient(bs.rdb, ac)
		if err := srv.Start(bs.bhandler.BatchMux()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
	}
}

// waitBatchDone is waitDone that says where the unfinished items are (the
// queue's tasks by state and its groups) when the import does not finish.
func (bs *batchSetup) waitBatchDone(t testing.TB, importID string, timeout time.Duration) store.Status {
	t.Helper()
	return waitImportDone(t, bs.imports, importID, timeout, bs.where)
}

// importAndWait submits f in batch mode and waits until it is done. It may
// run on any goroutine: it reports problems as an error, never through t.
func (bs *batchSetup) importAndWait(f *importer.File, timeout time.Duration) (store.Status, error) {
	ctx := context.Background()
	res, err := bs.bimports.Submit(ctx, bs.portal, "", f)
	if err != nil {
		return store.Status{}, err
	}
	var st store.Status
	var serr error
	err = testutil.Poll(timeout, func() (bool, string) {
		st, serr = bs.imports.Status(ctx, res.ID)
		return serr != nil || st.Done, fmt.Sprintf("import %s: %+v; %s", res.ID, st.Counts, bs.where())
	})
	if serr != nil {
		return st, serr
	}
	return st, err
}

// waitIdle waits until the queue holds no task that may still run: none
// pending, active, scheduled, retrying or aggregating, seen on three polls
// in a row (while asynq turns a group into a batch task, the queue looks
// empty for an instant).
func (bs *batchSetup) waitIdle(t testing.TB, timeout time.Duration) {
	t.Helper()
	idle := 0
	testutil.WaitFor(t, timeout, "queue idle", func() (bool, string) {
		q, err := bs.inspector.GetQueueInfo(bs.queue)
		if err != nil {
			return false, err.Error()
		}
		if q.Pending+q.Active+q.Scheduled+q.Retry+q.Aggregating == 0 {
			idle++
		} else {
			idle = 0
		}
		return idle >= 3, bs.where()
	})
}

// where says where unfinished items are: the queue's tasks by state, its
// groups, the errors of retried or archived tasks, and the portal's counters.
func (bs *batchSetup) where() string {
	q, qerr := bs.inspector.GetQueueInfo(bs.queue)
	groups, _ := bs.inspector.Groups(bs.queue)
	var gs []string
	for _, g := range groups {
		gs = append(gs, fmt.Sprintf("%s=%d", g.Group, g.Size))
	}
	var failed []string
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){bs.inspector.ListRetryTasks, bs.inspector.ListArchivedTasks} {
		infos, _ := list(bs.queue)
		for _, in := range infos {
			failed = append(failed, in.Type+": "+in.LastErr)
		}
	}
	return fmt.Sprintf("queue %+v (%v); groups %v; retry/archived %q; portal %+v", q, qerr, gs, failed, bs.sim.Stats())
}

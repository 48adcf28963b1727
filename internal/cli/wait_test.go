package cli_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/cli"
	"github.com/b24queue/b24queue/internal/fleet"
	"github.com/b24queue/b24queue/limiter"
	"github.com/b24queue/b24queue/tasks"
)

// startWorker runs an asynq server for the fixture's queue with the tasks
// handler against a simulated portal, wired like the worker (same key prefix
// as the command, so both see the same imports). It stops on t.Cleanup.
func startWorker(t *testing.T, f *fixture, sim b24test.Config) *b24test.Server {
	t.Helper()
	srv := b24test.NewServer(t, sim)
	logger := slog.New(slog.DiscardHandler)
	limits := limiter.Config{Rate: 200, Burst: 200}
	lim := limiter.New(f.rdb, limits, limiter.WithPrefix(f.app.Prefix+":lim"), limiter.WithLogger(logger))
	portal, err := tasks.NewPortal(tasks.PortalConfig{Name: f.portal, WebhookURL: srv.WebhookURL(), Limits: limits, Timeout: 10 * time.Second}, lim, nil, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(f.rdb)
	h, err := tasks.NewHandler(tasks.HandlerConfig{
		Portals: []*tasks.Portal{portal},
		Claims:  tasks.NewClaims(f.rdb, f.app.Prefix),
		Imports: tasks.NewImports(f.rdb, client, f.app.Prefix, logger),
		Logger:  logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := asynq.Config{
		Concurrency:              5,
		Queues:                   map[string]int{f.queue: 1},
		RetryDelayFunc:           tasks.RetryDelay,
		IsFailure:                tasks.IsFailure,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		TaskCheckInterval:        20 * time.Millisecond,
		ShutdownTimeout:          2 * time.Second,
		LogLevel:                 asynq.FatalLevel,
	}
	// Imports are grouped for batching, as on a real worker.
	tasks.BatchServerConfig(true).Apply(&cfg)
	as := asynq.NewServerFromRedisClient(f.rdb, cfg)
	if err := as.Start(h.BatchMux()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Shutdown)
	// Join the fleet as a worker does, so that the command sees the portal
	// served (fleet.Known).
	members := fleet.NewMembers(f.rdb, f.app.Prefix)
	id := "test-" + f.portal
	if err := members.Beat(t.Context(), fleet.Member{ID: id, Expires: time.Now().Add(time.Hour), Portals: []string{f.portal}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = members.Leave(context.Background(), id) })
	t.Cleanup(func() {
		ctx := context.Background()
		iter := f.rdb.Scan(ctx, 0, "asynq:{"+f.queue+"}:*", 1000).Iterator()
		for iter.Next(ctx) {
			f.rdb.Del(ctx, iter.Val())
		}
	})
	return srv
}

func TestImportWaitFollowsUntilDone(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name         string
		workplaceCap int // the plan's cap: more workplaces fail permanently
		wantCode     int
		wantFinal    string
		wantFailures []string
	}{
		{
			name:      "all created",
			wantCode:  cli.ExitOK,
			wantFinal: "import wait-ok: 8/8 created, 0 failed, 0 pending, 0 waiting",
		},
		{
			name:         "a workplace over the plan's cap fails",
			workplaceCap: 1,
			wantCode:     cli.ExitFailure,
			wantFinal:    "import wait-fail: 7/8 created, 1 failed, 0 pending, 0 waiting",
			// Either workplace may be the one over the cap.
			wantFailures: []string{"1 item(s) of import wait-fail failed", "LIMIT_EXCEEDED"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, true)
			sim := startWorker(t, f, b24test.Config{Rate: 200, Burst: 200, WorkplaceCap: tt.workplaceCap})
			// A chain of depth 5 (each level waits for the one above) and
			// two workplaces.
			var b strings.Builder
			b.WriteString("departments:\n  - {key: d0, name: D0, parent_id: 1}\n")
			for i := 1; i < 6; i++ {
				fmt.Fprintf(&b, "  - {key: d%d, name: D%d, parent: d%d}\n", i, i, i-1)
			}
			b.WriteString("workplaces:\n  - {key: w1, title: W1}\n  - {key: w2, title: W2}\n")
			id := "wait-ok"
			if tt.workplaceCap > 0 {
				id = "wait-fail"
			}
			code, out, errOut := f.run("import", writeFile(t, "chain.yaml", b.String()), "--wait", "--id", id)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, errOut)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if !strings.HasPrefix(lines[0], "import "+id+": 8 items, 1 enqueued now") {
				t.Errorf("first line %q, want the submit summary", lines[0])
			}
			if len(lines) < 3 {
				t.Errorf("no progress lines between the summary and the end:\n%s", out)
			}
			for _, l := range lines[1 : len(lines)-1] {
				if !strings.HasPrefix(l, "import "+id+": ") || !strings.Contains(l, "/8 created") {
					t.Errorf("progress line %q is not a plain progress line", l)
				}
			}
			if got := lines[len(lines)-1]; got != tt.wantFinal {
				t.Errorf("last line %q, want the final counts %q", got, tt.wantFinal)
			}
			if tt.wantFailures != nil && !regexp.MustCompile(`(?m)^  w[12]: .*LIMIT_EXCEEDED`).MatchString(errOut) {
				t.Errorf("stderr does not list the failed workplace as KEY: reason:\n%s", errOut)
			}
			for _, w := range tt.wantFailures {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if got := len(sim.Portal.Departments()); got != 7 { // 6 + the portal's root
				t.Errorf("simulator has %d departments, want 7", got)
			}

			checkFinishedStatus(t, f, id, tt.wantCode, tt.wantFailures != nil)
		})
	}
}

// checkFinishedStatus checks `status` of a finished import: the same exit
// code as --wait, the created IDs by key, the failure if any.
func checkFinishedStatus(t *testing.T, f *fixture, id string, wantCode int, failed bool) {
	t.Helper()
	code, out, errOut := f.run("status", id)
	if code != wantCode {
		t.Errorf("status: exit code %d, want %d; stderr: %s", code, wantCode, errOut)
	}
	for _, want := range []string{"import " + id + " (portal " + f.portal + "): done", "portal IDs (key: ID, created or adopted):", "  d5: "} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	if failed && !regexp.MustCompile(`(?m)^failed:\n  w[12]: .*LIMIT_EXCEEDED`).MatchString(out) {
		t.Errorf("status output does not list the failure:\n%s", out)
	}
}

// Interrupting --wait stops the waiting, not the import, and says whether
// the import goes on.
func TestImportWaitInterrupted(t *testing.T) {
	t.Parallel()
	f := setup(t, true) // no worker: the import does not move
	code, out, errOut := f.runFor(300*time.Millisecond, "import", writeFile(t, "org.yaml", goodYAML), "--wait", "--id", "stuck")
	if code != cli.ExitFailure {
		t.Errorf("exit code %d, want 1", code)
	}
	// Nothing serves the fixture's portal: --wait says so at once, and
	// Ctrl-C does not claim that the import goes on.
	for _, want := range []string{
		"enqueue import: no worker is serving portal " + f.portal + ": nothing moves until a worker with this portal configured starts\n",
		"enqueue import: stopped waiting; no worker is serving portal " + f.portal + ", so import stuck waits in Redis until one does: enqueue status stuck\n",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	code, _, errOut = f.run("status", "stuck")
	if code != cli.ExitOK || !strings.Contains(errOut, "enqueue status: no worker is serving portal "+f.portal) {
		t.Errorf("status of the stuck import: exit %d, stderr %q; want it to say no worker serves the portal", code, errOut)
	}
	if !strings.HasSuffix(out, "import stuck: 0/6 created, 0 failed, 3 pending, 3 waiting\n") {
		t.Errorf("stdout does not end with the last counts:\n%s", out)
	}
}

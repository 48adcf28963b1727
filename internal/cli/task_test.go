package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/cli"
	"github.com/b24queue/b24queue/internal/fleet"
	"github.com/b24queue/b24queue/tasks"
)

// waitServed waits until a live asynq server serves f's portal.
func waitServed(t *testing.T, f *fixture) {
	t.Helper()
	if !tasks.WaitServed(t.Context(), fleet.Known(f.rdb, f.app.Prefix), 5*time.Second, f.portal) {
		t.Fatalf("no server of portal %s registered within 5 s", f.portal)
	}
}

// The ID printed by `enqueue department` is enough to follow the task:
// pending while no worker serves its portal (and stderr says so), unknown
// IDs exit 1.
func TestTaskPendingAndUnknown(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	code, out, errOut := f.run("department", "--name", "Sales EU", "--parent-id", "1")
	if code != cli.ExitOK {
		t.Fatalf("department: exit %d, stderr %s", code, errOut)
	}
	if want := "enqueue department: no worker is serving portal " + f.portal; !strings.Contains(errOut, want) {
		t.Errorf("department's stderr lacks %q:\n%s", want, errOut)
	}
	id := strings.TrimSpace(out)

	code, out, errOut = f.run("task", id)
	if code != cli.ExitOK {
		t.Fatalf("task: exit %d, stderr %s", code, errOut)
	}
	for _, want := range []string{"task " + id + " (department:create, portal " + f.portal + "): pending", "retries  0 of 25"} {
		if !strings.Contains(out, want) {
			t.Errorf("task output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "no worker is serving portal "+f.portal) {
		t.Errorf("task's stderr does not say that no worker serves the portal:\n%s", errOut)
	}

	code, out, _ = f.run("task", "--json", id)
	var st tasks.TaskStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != cli.ExitOK {
		t.Fatalf("task --json: exit %d, %v:\n%s", code, err, out)
	}
	if st.ID != id || st.State != "pending" || st.Portal != f.portal || st.Queue != f.queue || st.MaxRetry != 25 || st.CreatedID != 0 {
		t.Errorf("task --json = %+v", st)
	}

	code, _, errOut = f.run("task", "no-such-task")
	if code != cli.ExitFailure || !strings.Contains(errOut, `enqueue task: no task "no-such-task" in any portal's queue`) {
		t.Errorf("unknown task: exit %d, stderr %q", code, errOut)
	}
}

// A completed task shows the created ID (its result); a task that failed
// for good shows the portal's error and its Bitrix24 code, and exits 1.
func TestTaskShowsCreatedIDOrTheError(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	sim := startWorker(t, f, b24test.Config{Rate: 200, Burst: 200, WorkplaceCap: 1})
	await := func(id, state string) tasks.TaskStatus {
		t.Helper()
		var st tasks.TaskStatus
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			_, out, _ := f.run("task", id, "--json")
			if json.Unmarshal([]byte(out), &st) == nil && st.State == state {
				return st
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("task %s is %q, not %s, after 20 s", id, st.State, state)
		return st
	}

	_, out, _ := f.run("workplace", "--title", "HR")
	ok := await(strings.TrimSpace(out), "completed")
	ws := sim.Portal.Workplaces()
	if len(ws) != 1 || ok.CreatedID != ws[0].ID || ok.Adopted || ok.Error != "" {
		t.Errorf("completed task = %+v; portal holds %+v", ok, ws)
	}
	code, text, _ := f.run("task", ok.ID)
	if code != cli.ExitOK || !strings.Contains(text, "completed") || !strings.Contains(text, "created ID") {
		t.Errorf("task of a completed workplace: exit %d:\n%s", code, text)
	}

	_, out, _ = f.run("workplace", "--title", "Over the cap")
	bad := await(strings.TrimSpace(out), "archived")
	if bad.ErrorCode != "LIMIT_EXCEEDED" || !strings.Contains(bad.Error, "LIMIT_EXCEEDED") || bad.CreatedID != 0 {
		t.Errorf("failed task = %+v, want the LIMIT_EXCEEDED error", bad)
	}
	code, text, _ = f.run("task", bad.ID)
	if code != cli.ExitFailure || !strings.Contains(text, "archived: failed for good") || !strings.Contains(text, "error code  LIMIT_EXCEEDED") {
		t.Errorf("task of a failed workplace: exit %d:\n%s", code, text)
	}
}

// The old --parent keeps working for one release, with a warning.
func TestDeprecatedParentFlag(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	code, out, errOut := f.run("department", "--name", "Sales", "--parent", "12")
	if code != cli.ExitOK {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	if !strings.Contains(errOut, "enqueue department: warning: --parent is deprecated and will be removed in the next release; use --parent-id\n") {
		t.Errorf("no deprecation warning on stderr:\n%s", errOut)
	}
	info, err := f.insp.GetTaskInfo(f.queue, strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	var p tasks.DepartmentPayload
	if err := json.Unmarshal(info.Payload, &p); err != nil || p.Parent != 12 {
		t.Errorf("payload %s: parent %d, want 12 (%v)", info.Payload, p.Parent, err)
	}
}

// While workers serve other portals, a portal none serves is refused
// (exit 2, the served portals named, nothing enqueued); a served one is
// accepted without a warning.
func TestUnservedPortalIsRefused(t *testing.T) {
	t.Parallel()
	other := setup(t, true)
	startWorker(t, other, b24test.Config{})
	waitServed(t, other)

	f := setup(t, true)
	f.app.AnyPortal = false
	f.app.Prefix = other.app.Prefix // one fleet
	for _, args := range [][]string{
		{"department", "--name", "Sales", "--parent-id", "1"},
		{"workplace", "--title", "HR"},
		{"import", writeFile(t, "org.yaml", goodYAML)},
	} {
		code, out, errOut := f.run(args...)
		want := `portal "` + f.portal + `": no worker serves it; the portals served now are `
		if code != cli.ExitUsage || out != "" || !strings.Contains(errOut, want) || !strings.Contains(errOut, other.portal) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2 and %q naming %s", args[0], code, out, errOut, want, other.portal)
		}
	}
	if n := f.queued(); n != 0 {
		t.Errorf("%d tasks enqueued for an unserved portal", n)
	}

	other.app.AnyPortal = false
	code, _, errOut := other.run("workplace", "--title", "HR")
	if code != cli.ExitOK || errOut != "" {
		t.Errorf("served portal: exit %d, stderr %q; want 0 and nothing on stderr", code, errOut)
	}
}

// Ctrl-C during --wait while a worker serves the portal: the import goes
// on, and the command says so.
func TestImportWaitInterruptedWhileServed(t *testing.T) {
	t.Parallel()
	f := setup(t, true)
	startWorker(t, f, b24test.Config{Rate: 200, Burst: 200, Latency: 3 * time.Second})
	waitServed(t, f)
	code, _, errOut := f.runFor(700*time.Millisecond, "import", writeFile(t, "org.yaml", goodYAML), "--wait", "--id", "served")
	if code != cli.ExitFailure {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(errOut, "stopped waiting; import served goes on in the workers: enqueue status served") ||
		strings.Contains(errOut, "no worker is serving") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/importer/store"
)

// Retry does what submitting the same file again does, without the file.
func TestRetryRetriesFailedItems(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	f := treeFile([]int{1, 2, 3}, 1)
	res, err := b.imports.Submit(ctx, b.portal, "retry-api-1", f)
	if err != nil {
		t.Fatal(err)
	}
	markReconciled(t, b.imports, b.portal, res.ID)
	if err := b.imports.Failed(ctx, res.ID, "d0", "permanent failure: ACCESS_DENIED"); err != nil {
		t.Fatal(err)
	}
	got, err := b.imports.Retry(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.Retried)
	if got.ID != res.ID || len(got.Retried) != 6 || got.Retried[0] != "d0" || got.Enqueued != 2 {
		t.Fatalf("Retry = %+v, want 6 retried (d0 and its subtree), 2 enqueued (d0 and the workplace, never released)", got)
	}
	// Nothing failed any more: a second Retry retries nothing.
	again, err := b.imports.Retry(ctx, res.ID)
	if err != nil || len(again.Retried) != 0 || again.Enqueued != 0 {
		t.Fatalf("second Retry = %+v, %v", again, err)
	}
	b.start(t, nil)
	st := b.waitDone(t, res.ID, 20*time.Second)
	if st.Counts != (store.Counts{Total: 7, Created: 7}) {
		t.Fatalf("counts = %+v, failed %v", st.Counts, st.Failed)
	}
	checkSimulator(t, b, f, st)

	if _, err := b.imports.Retry(ctx, "no-such-import"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Retry of an unknown import = %v, want store.ErrNotFound", err)
	}
}

// The retried items go to the verify group, whose batches look every item
// up before creating it (the failure may have come after the portal did
// the work), as with a second Submit.
func TestRetryLooksUpFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	ctx := context.Background()
	res, err := bs.bimports.Submit(ctx, b.portal, "", treeFile([]int{1, 2}, 0))
	if err != nil {
		t.Fatal(err)
	}
	markReconciled(t, b.imports, b.portal, res.ID)
	if err := bs.imports.Failed(ctx, res.ID, "d0", "batch failed: lost answer"); err != nil {
		t.Fatal(err)
	}
	got, err := bs.bimports.Retry(ctx, res.ID)
	if err != nil || len(got.Retried) != 3 || got.Enqueued != 1 {
		t.Fatalf("Retry = %+v, %v; want 3 retried, the root enqueued", got, err)
	}
	info, err := b.inspector.GetTaskInfo(b.queue, ImportTaskID(res.ID, "d0"))
	if err != nil {
		t.Fatal(err)
	}
	if want := verifyGroup(b.portal, methodDepartmentAdd); info.Group != want {
		t.Errorf("retried root in group %q, want the verify group %q", info.Group, want)
	}
}

// An import whose reconcile step failed for good fails all its items with
// the reason; Retry and a second Submit reconcile it again and it
// completes, although the failed reconcile task is still archived (its ID
// taken).
func TestRetryAfterTheReconcileStepFailed(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"retry", "submit"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			f := treeFile([]int{1, 2}, 1)
			res, err := b.imports.Submit(ctx, b.portal, "reconcile-fails-"+via, f)
			if err != nil {
				t.Fatal(err)
			}
			// What asynq and mapErrors do when the reconcile task fails for
			// good: archive it, fail the import's items.
			st, err := b.imports.Status(ctx, res.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.inspector.ArchiveTask(b.queue, reconcileTaskID(res.ID, st.CreatedAt)); err != nil {
				t.Fatal(err)
			}
			payload, _ := json.Marshal(ReconcilePayload{Portal: b.portal, ImportID: res.ID})
			cause := errors.New("read the portal's structure: b24: department.get: INTERNAL_SERVER_ERROR")
			if err := b.handler.failReconcile(ctx, asynq.NewTask(TypeImportReconcile, payload), cause); err != cause {
				t.Fatalf("failReconcile = %v, want the cause", err)
			}
			st, err = b.imports.Status(ctx, res.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Counts.Failed != st.Counts.Total || !contains(fmt.Sprint(st.Failed), "reconcile failed: read the portal") {
				t.Fatalf("after the reconcile step failed: counts %+v, failed %v; want every item failed with the reason", st.Counts, st.Failed)
			}
			switch via {
			case "retry":
				got, err := b.imports.Retry(ctx, res.ID)
				if err != nil || len(got.Retried) != 4 || got.Enqueued != 1 {
					t.Fatalf("Retry = %+v, %v; want 4 retried, the reconcile task enqueued", got, err)
				}
			default:
				if _, err := b.imports.Submit(ctx, b.portal, res.ID, f); err != nil {
					t.Fatal(err)
				}
			}
			b.start(t, nil)
			st = b.waitDone(t, res.ID, 20*time.Second)
			if st.Counts != (store.Counts{Total: 4, Created: 4}) {
				t.Fatalf("after %s: counts %+v, failed %v", via, st.Counts, st.Failed)
			}
			checkSimulator(t, b, f, st)
		})
	}
}

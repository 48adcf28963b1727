package tasks

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

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
	if err := b.imports.Failed(ctx, res.ID, "d0", "permanent failure: ACCESS_DENIED"); err != nil {
		t.Fatal(err)
	}
	got, err := b.imports.Retry(ctx, res.ID)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.Retried)
	if got.ID != res.ID || len(got.Retried) != 6 || got.Retried[0] != "d0" || got.Enqueued != 1 {
		t.Fatalf("Retry = %+v, want 6 retried (d0 and its subtree), 1 enqueued", got)
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
	if err := bs.imports.Failed(ctx, res.ID, "d0", "batch failed: lost answer"); err != nil {
		t.Fatal(err)
	}
	// The failed root's task left the queue (as it does when it fails).
	if err := b.inspector.DeleteTask(b.queue, ImportTaskID(res.ID, "d0")); err != nil {
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

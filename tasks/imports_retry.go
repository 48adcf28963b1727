package tasks

import (
	"context"
)

// RetryResult says what Retry did.
type RetryResult struct {
	// ID is the import.
	ID string `json:"id"`
	// Retried lists the keys of the failed items given another chance:
	// the failed items and their failed subtrees.
	Retried []string `json:"retried"`
	// Enqueued counts the tasks put on the queue (the retried items whose
	// parent exists, and any item a crash left behind); the others wait for
	// their parent as in a fresh import.
	Enqueued int `json:"enqueued"`
}

// Retry gives the import's failed items another chance, exactly as
// submitting the same file again does (see Submit), without the file: the
// archived tasks of the failed items are deleted, the items and their
// failed subtrees are reset, and every item that can run now is enqueued
// (an import whose reconcile step failed is reconciled first).
// The retried items are looked up before they are created (their failure
// may have come after the portal did the work), so nothing is created
// twice. An import without failures enqueues only what a crash may have
// left behind. An unknown import wraps store.ErrNotFound. Retry is safe to
// call again after any error.
func (im *Imports) Retry(ctx context.Context, importID string) (RetryResult, error) {
	res := RetryResult{ID: importID, Retried: []string{}}
	portal, err := im.portal(ctx, importID)
	if err != nil {
		return res, err
	}
	reconciled, err := im.store.Reconciled(ctx, importID)
	if err != nil {
		return res, err
	}
	var sr SubmitResult
	retried, err := im.resume(ctx, portal, importID, reconciled, &sr)
	res.Retried = append(res.Retried, retried...)
	res.Enqueued = sr.Enqueued
	if err != nil {
		return res, err
	}
	if !reconciled {
		// Not reconciled yet (its reconcile step failed): reconcile first,
		// as Submit does; the reconcile step releases the items.
		st, err := im.store.Status(ctx, importID)
		if err != nil {
			return res, err
		}
		n, err := im.enqueueReconcile(ctx, portal, importID, st.CreatedAt, true, SubmitOptions{})
		if err != nil {
			return res, err
		}
		res.Enqueued += n
	}
	im.logger.InfoContext(ctx, "import retried", "import_id", importID, "portal", portal,
		"retried", sr.Retried, "enqueued", res.Enqueued)
	return res, nil
}

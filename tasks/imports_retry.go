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
// failed subtrees are reset, and every item that can run now is enqueued.
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
	retried, err := im.retryFailed(ctx, portal, importID)
	if err != nil {
		return res, err
	}
	res.Retried = append(res.Retried, retried...)
	items, err := im.store.Releasable(ctx, importID)
	if err != nil {
		return res, err
	}
	res.Enqueued, err = im.enqueue(ctx, portal, importID, items, retried...)
	if err == nil {
		im.logger.InfoContext(ctx, "import retried", "import_id", importID, "portal", portal,
			"retried", len(res.Retried), "enqueued", res.Enqueued)
	}
	return res, err
}

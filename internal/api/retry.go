package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
)

// ImportRetried is the 202 answer of POST /v1/imports/{id}/retry.
type ImportRetried struct {
	ID string `json:"id"`
	// Retried counts the failed items given another chance (with their
	// failed subtrees); RetriedKeys names them.
	Retried     int      `json:"retried"`
	RetriedKeys []string `json:"retried_keys"`
	// Enqueued counts the tasks put on the queue: the retried items whose
	// parent exists; the others wait for their parent.
	Enqueued int `json:"enqueued"`
}

// routeRetry adds POST /v1/imports/{id}/retry: the import's failed items
// are retried exactly as when its file is submitted again
// (tasks.Imports.Retry) → 202 ImportRetried; 404 unknown import, 405 other
// methods, 503 Redis failed. A browser's cross-origin POST is refused with
// 403 (http.CrossOriginProtection): the pages' basic auth credentials are
// sent by the browser on any site's form, and this request has no body
// whose type would stop it.
func (s *server) routeRetry(mux *http.ServeMux) {
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusForbidden, ErrorBody{Error: "cross-origin request refused"})
	}))
	mux.Handle("POST /v1/imports/{id}/retry", csrf.Handler(http.HandlerFunc(s.retryImport)))
	mux.Handle("/v1/imports/{id}/retry", methodNotAllowed(http.MethodPost))
}

func (s *server) retryImport(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if importer.ValidateID(id) != nil {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("no import %q", id)})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
	defer cancel()
	res, err := s.imports.Retry(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("no import %q", id)})
		return
	case err != nil:
		s.logger.ErrorContext(ctx, "retry import", "import_id", id, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{
			Error: "could not retry the import: a failed item's task may still be running, or the queue's Redis failed; try again"})
		return
	}
	writeJSON(w, http.StatusAccepted, ImportRetried{ID: res.ID, Retried: len(res.Retried), RetriedKeys: res.Retried, Enqueued: res.Enqueued})
}

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
	s.forImport(w, r, "retry import", "could not retry the import: a failed item's task may still be running, or the queue's Redis failed; try again",
		func(ctx context.Context, id string) (int, any, error) {
			res, err := s.imports.Retry(ctx, id)
			return http.StatusAccepted, ImportRetried{ID: res.ID, Retried: len(res.Retried), RetriedKeys: res.Retried, Enqueued: res.Enqueued}, err
		})
}

// forImport answers a request about the import named by its {id}: 404 for
// an invalid or unknown ID, 503 (failMsg; the error logged as what) for
// any other error of call, else call's status and value (importStatus and
// retryImport).
func (s *server) forImport(w http.ResponseWriter, r *http.Request, what, failMsg string,
	call func(ctx context.Context, id string) (int, any, error)) {
	id := r.PathValue("id")
	if importer.ValidateID(id) != nil {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("no import %q", id)})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
	defer cancel()
	status, v, err := call(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("no import %q", id)})
	case err != nil:
		s.logger.ErrorContext(ctx, what, "import_id", id, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: failMsg})
	default:
		writeJSON(w, status, v)
	}
}

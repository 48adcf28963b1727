package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/tasks"
)

// PlanTimeout bounds how long POST /v1/imports?plan=1 waits for a worker's
// plan.
const PlanTimeout = time.Minute

// planImport answers POST /v1/imports?plan=1: 200 with the plan (the
// `enqueue import --plan --json` shape), 400 for an invalid file, 503 when no
// worker planned it in time or Redis failed.
func (s *server) planImport(w http.ResponseWriter, r *http.Request, portal string, f *importer.File, policy importer.OnConflict) {
	ctx, cancel := context.WithTimeout(r.Context(), PlanTimeout+5*time.Second)
	defer cancel()
	plan, err := s.producer.PlanImport(ctx, portal, f, policy, PlanTimeout)
	var verr *importer.ValidationError
	var tverr *tasks.ValidationError
	switch {
	case errors.As(err, &verr), errors.As(err, &tverr):
		s.badImport(w, err)
	case err != nil:
		s.logger.ErrorContext(ctx, "plan import", "portal", portal, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: "could not plan the import: " + err.Error()})
	default:
		writeJSON(w, http.StatusOK, plan)
	}
}

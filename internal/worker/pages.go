package worker

import (
	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/api"
	"github.com/b24queue/b24queue/internal/fleet"
	"github.com/b24queue/b24queue/internal/web"
	"github.com/b24queue/b24queue/tasks"
)

// mountHTTP adds, behind the side port's basic auth like the dashboard,
// the enqueue API at /v1/ and the pages for people (package web) at
// /imports/ and /portals/: the imports, and the limiter's state of the
// portals this worker serves.
func (w *Worker) mountHTTP(imports *tasks.Imports, producer *asynq.Client, inspector *asynq.Inspector, prefix string) {
	// The API refuses portals the fleet does not know (package fleet): a
	// quick look for the portal asked, the whole list only to refuse.
	own := w.ownPortals()
	w.Mount("/v1/", api.New(imports, producer, w.logger,
		api.WithInspector(inspector), api.WithKnownPortals(fleet.Known(w.rdb, prefix, own...)),
		api.WithServesPortal(fleet.Serves(w.rdb, prefix, own...)),
		api.WithPortals(fleet.NewAdmin(w.rdb, prefix, w.cfg.PortalReplicas, w.cfg.InsecureHTTPHosts))))
	perRequest := b24.MaxBatch
	if !w.cfg.Batch {
		perRequest = 1
	}
	pages := web.New(web.Config{
		Imports:         imports,
		Limiter:         w.limiter,
		Portals:         w.watched,
		ItemsPerRequest: perRequest,
		MonitorPath:     "/monitoring",
		APIPath:         "/v1",
		Redact:          w.secrets,
		Logger:          w.logger,
	})
	w.Mount("/imports/", pages)
	w.Mount("/portals/", pages)
}

package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/fleet"
)

// MaxPortalBody bounds a portal registration's body.
const MaxPortalBody = config.MaxRegistration

// PortalList is the answer of GET /v1/portals.
type PortalList struct {
	Portals []fleet.PortalStatus `json:"portals"`
}

// PortalRemoved is the answer of DELETE /v1/portals/{name}.
type PortalRemoved struct {
	Removed      string `json:"removed"`
	DeletedTasks int    `json:"deleted_tasks"`
}

// PortalResumed is the answer of POST /v1/portals/{name}/resume.
type PortalResumed struct {
	Portal         string `json:"portal"`
	WasUnavailable bool   `json:"was_unavailable"`
}

// WithPortals serves the portal routes with admin (see New); without it
// they answer 404.
func WithPortals(admin *fleet.Admin) Option { return func(o *options) { o.portals = admin } }

// routePortals adds the portal routes: they change what the fleet does, so
// they refuse cross-origin requests like the retry button's route.
//
//	POST   /v1/portals               register (config.RegistrationHelp) → 201 new, 200 replaced: fleet.Record
//	GET    /v1/portals               → 200 PortalList
//	GET    /v1/portals/{name}        → 200 fleet.PortalStatus, 404
//	DELETE /v1/portals/{name}[?force=1] → 200 PortalRemoved; 409 while it has tasks or for a configured portal
//	POST   /v1/portals/{name}/resume → 200 PortalResumed
func (s *server) routePortals(mux *http.ServeMux) {
	if s.portals == nil {
		return
	}
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusForbidden, ErrorBody{Error: "cross-origin request refused"})
	}))
	mux.Handle("POST /v1/portals", csrf.Handler(http.HandlerFunc(s.registerPortal)))
	mux.HandleFunc("GET /v1/portals", s.listPortals)
	mux.HandleFunc("GET /v1/portals/{name}", s.portalStatus)
	mux.Handle("DELETE /v1/portals/{name}", csrf.Handler(http.HandlerFunc(s.removePortal)))
	mux.Handle("POST /v1/portals/{name}/resume", csrf.Handler(http.HandlerFunc(s.resumePortal)))
	mux.Handle("/v1/portals", methodNotAllowed(http.MethodGet, http.MethodPost))
	mux.Handle("/v1/portals/{name}", methodNotAllowed(http.MethodGet, http.MethodDelete))
	mux.Handle("/v1/portals/{name}/resume", methodNotAllowed(http.MethodPost))
}

func (s *server) registerPortal(w http.ResponseWriter, r *http.Request) {
	if mt := mediaType(r); mt != "application/json" && mt != "application/yaml" {
		writeJSON(w, http.StatusUnsupportedMediaType, ErrorBody{Error: "Content-Type must be application/json (or application/yaml)"})
		return
	}
	body, ok := readBody(w, r, MaxPortalBody)
	if !ok {
		return
	}
	rec, created, err := s.portals.Register(r.Context(), "", body)
	if err != nil {
		s.portalError(w, "register portal", err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.logger.Info("portal registered", "portal", rec.Name, "auth", rec.Auth, "host", rec.Host, "created", created)
	writeJSON(w, status, rec)
}

func (s *server) listPortals(w http.ResponseWriter, r *http.Request) {
	list, err := s.portals.List(r.Context())
	if err != nil {
		s.portalError(w, "list portals", err)
		return
	}
	writeJSON(w, http.StatusOK, PortalList{Portals: list})
}

func (s *server) portalStatus(w http.ResponseWriter, r *http.Request) {
	s.forPortal(w, r, "portal status", func(ctx context.Context, name string) (any, error) {
		return s.portals.Status(ctx, name)
	})
}

func (s *server) removePortal(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query().Get("force")
	force, err := strconv.ParseBool(cmp.Or(v, "false"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: fmt.Sprintf("force=%q: use force=1 or force=true", v)})
		return
	}
	s.forPortal(w, r, "remove portal", func(ctx context.Context, name string) (any, error) {
		n, err := s.portals.Remove(ctx, name, force)
		if err == nil {
			s.logger.Info("portal removed", "portal", name, "deleted_tasks", n)
		}
		return PortalRemoved{Removed: name, DeletedTasks: n}, err
	})
}

func (s *server) resumePortal(w http.ResponseWriter, r *http.Request) {
	s.forPortal(w, r, "resume portal", func(ctx context.Context, name string) (any, error) {
		was, err := s.portals.Resume(ctx, name)
		if err == nil {
			s.logger.Info("portal resumed by an operator", "portal", name, "was_unavailable", was)
		}
		return PortalResumed{Portal: name, WasUnavailable: was}, err
	})
}

// forPortal answers a request about the portal named by its {name} with
// call's value, or the status of its error (portalError).
func (s *server) forPortal(w http.ResponseWriter, r *http.Request, what string, call func(ctx context.Context, name string) (any, error)) {
	v, err := call(r.Context(), r.PathValue("name"))
	if err != nil {
		s.portalError(w, what, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// portalError translates an error of fleet.Admin: 400 invalid registration
// (every problem), 404 unknown portal, 409 configured portal or tasks
// left (or still running after a removal), 503 Redis.
func (s *server) portalError(w http.ResponseWriter, what string, err error) {
	var ue *config.UsageError
	switch {
	case errors.As(err, &ue):
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid portal registration", Problems: ue.Problems})
	case errors.Is(err, fleet.ErrUnknownPortal):
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: err.Error()})
	case errors.Is(err, fleet.ErrConfigured), errors.Is(err, fleet.ErrHasWork), errors.Is(err, fleet.ErrTasksRunning):
		writeJSON(w, http.StatusConflict, ErrorBody{Error: err.Error()})
	default:
		s.logger.Error(what, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: what + ": the fleet's Redis failed; try again"})
	}
}

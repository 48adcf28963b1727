// Package api is the worker's HTTP enqueue API for services not written in
// Go: one department, one workplace, a whole import, an import's status, a
// task's outcome. It accepts and rejects exactly what the enqueue command
// does (both go through tasks.Producer), and answers in JSON.
//
// Authentication is not done here: the worker mounts this handler behind the
// side port's basic auth (worker.Mount).
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/internal/fleet"
	"github.com/b24queue/b24queue/tasks"
)

// Body size limits. A task is a few hundred bytes; an import of 50,000
// departments fits in 8 MiB. Larger bodies are answered 413 without being
// read in full.
const (
	MaxTaskBody   = 64 << 10
	MaxImportBody = 8 << 20
)

// RequestTimeout bounds the Redis work of one request.
const RequestTimeout = 30 * time.Second

// ErrorBody is every error answer: a summary and, for invalid input, one
// entry per problem ("line 3: department \"x\": name is empty" for files).
type ErrorBody struct {
	Error    string   `json:"error"`
	Problems []string `json:"problems,omitempty"`
}

// TaskAccepted is the 202 answer of POST /v1/departments and /v1/workplaces.
// Warnings lists what the request should change although it was accepted
// (a deprecated field); each is also sent as a `Warning: 299 - "..."`
// header.
type TaskAccepted struct {
	TaskID   string   `json:"task_id"`
	Queue    string   `json:"queue"`
	Warnings []string `json:"warnings,omitempty"`
}

// ImportAccepted is the 202 answer of POST /v1/imports.
type ImportAccepted struct {
	ID             string `json:"id"`
	Total          int    `json:"total"`
	Enqueued       int    `json:"enqueued"`
	AlreadyCreated int    `json:"already_created"`
	// Existing is true when an import with this ID was submitted before.
	Existing bool `json:"existing"`
	// Reconciling is true when a worker first reads what the portal holds
	// and adopts what exists (a new import, or update=1).
	Reconciling bool `json:"reconciling,omitempty"`
}

// DepartmentRequest is the body of POST /v1/departments. ParentID is
// required: the ID of an existing department (every portal has its root
// department, so 0 is refused), like --parent-id of the command and
// parent_id of import files. Parent is its deprecated spelling, accepted
// for one release with a warning.
type DepartmentRequest struct {
	Portal   string `json:"portal"`
	Name     string `json:"name"`
	ParentID *int64 `json:"parent_id"`
	Parent   *int64 `json:"parent"`
	Sort     int    `json:"sort"`
	Head     int64  `json:"head"`
}

// DeprecatedParent is the warning of a request that names the parent with
// the deprecated field "parent".
const DeprecatedParent = `"parent" is deprecated and will be removed in the next release; use "parent_id"`

// WorkplaceRequest is the body of POST /v1/workplaces.
type WorkplaceRequest struct {
	Portal  string  `json:"portal"`
	Title   string  `json:"title"`
	TypeIDs []int64 `json:"type_ids"`
}

// server holds what the handlers share; it is safe for concurrent use as
// long as its parts are (tasks.Producer, tasks.Imports and asynq.Inspector
// are).
type server struct {
	producer *tasks.Producer
	imports  *tasks.Imports
	insp     *asynq.Inspector
	portals  *fleet.Admin
	logger   *slog.Logger
}

// Option adjusts New.
type Option func(*options)

type options struct {
	insp    *asynq.Inspector
	known   tasks.KnownPortals
	serves  tasks.ServesPortal
	portals *fleet.Admin
}

// WithInspector serves GET /v1/tasks/{id} with insp (on the queue's Redis);
// without it that route answers 404.
func WithInspector(insp *asynq.Inspector) Option { return func(o *options) { o.insp = insp } }

// WithKnownPortals refuses (400, naming the served portals) a portal no
// live worker serves; see tasks.WithKnownPortals.
func WithKnownPortals(known tasks.KnownPortals) Option { return func(o *options) { o.known = known } }

// WithServesPortal answers WithKnownPortals' question for one portal
// first; see tasks.WithServesPortal.
func WithServesPortal(serves tasks.ServesPortal) Option {
	return func(o *options) { o.serves = serves }
}

// New returns the API handler. Routes (Go 1.22 patterns, full paths, so
// mount it at "/v1/"):
//
//	POST /v1/departments   DepartmentRequest (application/json)   → 202 TaskAccepted
//	POST /v1/workplaces    WorkplaceRequest  (application/json)   → 202 TaskAccepted
//	POST /v1/imports       an import file; ?id=IMPORT_ID&portal=P[&update=1][&on_conflict=first] → 202 ImportAccepted;
//	                       ?plan=1 → 200 the plan (tasks.Plan), creating nothing
//	GET  /v1/imports/{id}  the status JSON of `enqueue status --json`, 404 if unknown
//	GET  /v1/tasks/{id}    tasks.TaskStatus, the JSON of `enqueue task --json`, 404 if unknown
//	/v1/portals...         register, list, look at, remove and resume portals (WithPortals; see routePortals)
//
// The import body is JSON (application/json) as in design.md; YAML
// (application/yaml) and CSV (text/csv) are accepted too. Errors are
// ErrorBody: 400 invalid input (every problem listed, nothing enqueued;
// also a portal no live worker serves, WithKnownPortals), 404 unknown
// import, task or path, 405 wrong method, 409 import ID already used for
// other content or another portal, 413 body over MaxTaskBody or
// MaxImportBody, 415 wrong Content-Type, 503 Redis failed. logger nil
// discards logs.
func New(imports *tasks.Imports, client *asynq.Client, logger *slog.Logger, opts ...Option) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var popts []tasks.ProducerOption
	if o.known != nil {
		popts = append(popts, tasks.WithKnownPortals(o.known))
	}
	if o.serves != nil {
		popts = append(popts, tasks.WithServesPortal(o.serves))
	}
	s := &server{producer: tasks.NewProducer(client, imports, popts...), imports: imports, insp: o.insp,
		portals: o.portals, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/departments", s.department)
	mux.HandleFunc("POST /v1/workplaces", s.workplace)
	mux.HandleFunc("POST /v1/imports", s.submitImport)
	mux.HandleFunc("GET /v1/imports/{id}", s.importStatus)
	mux.HandleFunc("GET /v1/tasks/{id}", s.taskStatus)
	mux.Handle("/v1/tasks/{id}", methodNotAllowed(http.MethodGet, http.MethodHead))
	s.routeRetry(mux)   // POST /v1/imports/{id}/retry
	s.routePortals(mux) // /v1/portals (WithPortals)
	// The same paths without a method catch the other methods, so that a
	// 405 is JSON like every other answer.
	mux.Handle("/v1/departments", methodNotAllowed(http.MethodPost))
	mux.Handle("/v1/workplaces", methodNotAllowed(http.MethodPost))
	mux.Handle("/v1/imports", methodNotAllowed(http.MethodPost))
	mux.Handle("/v1/imports/{id}", methodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: "no such endpoint: " + r.URL.Path})
	})
	return mux
}

func methodNotAllowed(allowed ...string) http.Handler {
	allow := ""
	for i, m := range allowed {
		if i > 0 {
			allow += ", "
		}
		allow += m
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: "method " + r.Method + " not allowed; use " + allow})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// mediaType returns the request's media type, lower case, without
// parameters ("" when absent or malformed).
func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// readBody reads the whole body up to limit. On failure it has answered
// (413 when too large) and returns false.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSON(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: fmt.Sprintf("body larger than %d bytes", limit)})
		return nil, false
	case err != nil:
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "read body: " + err.Error()})
		return nil, false
	}
	return data, true
}

// decodeTask decodes a single-task JSON body strictly: application/json,
// at most MaxTaskBody, no unknown fields, one value. On failure it has
// answered and returns false.
func decodeTask(w http.ResponseWriter, r *http.Request, v any) bool {
	if mediaType(r) != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, ErrorBody{Error: "Content-Type must be application/json"})
		return false
	}
	data, ok := readBody(w, r, MaxTaskBody)
	if !ok {
		return false
	}
	if !utf8.Valid(data) {
		// encoding/json would turn the bytes into U+FFFD silently; import
		// files are refused for the same reason.
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid JSON body", Problems: []string{"the body is not valid UTF-8 (Latin-1 or other bytes); send UTF-8"}})
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid JSON body", Problems: []string{jsonProblem(err)}})
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid JSON body", Problems: []string{"unexpected data after the JSON object"}})
		return false
	}
	return true
}

// jsonProblem words a decoding error for the caller, without Go type names.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q: expected %s, got JSON %s", typ.Field, typ.Type.Kind(), typ.Value)
	case errors.Is(err, io.EOF):
		return "empty body"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "body ends in the middle of the JSON value"
	}
	return err.Error() // e.g. `json: unknown field "x"`
}

func (s *server) department(w http.ResponseWriter, r *http.Request) {
	var req DepartmentRequest
	if !decodeTask(w, r, &req) {
		return
	}
	var warnings []string
	parent := req.ParentID
	switch {
	case req.ParentID != nil && req.Parent != nil:
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid department", Problems: []string{`give "parent_id" only ("parent" is its deprecated spelling)`}})
		return
	case req.Parent != nil:
		parent, warnings = req.Parent, []string{DeprecatedParent}
	case req.ParentID == nil:
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid department", Problems: []string{
			"parent_id is required: the ID of an existing department (every portal has its root department, usually 1)"}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
	defer cancel()
	info, err := s.producer.EnqueueDepartment(ctx, tasks.DepartmentPayload{Portal: req.Portal, Name: req.Name, Parent: *parent, Sort: req.Sort, Head: req.Head})
	s.answerTask(ctx, w, "department", info, err, warnings...)
}

func (s *server) workplace(w http.ResponseWriter, r *http.Request) {
	var req WorkplaceRequest
	if !decodeTask(w, r, &req) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
	defer cancel()
	info, err := s.producer.EnqueueWorkplace(ctx, tasks.WorkplacePayload{Portal: req.Portal, Title: req.Title, TypeIDs: req.TypeIDs})
	s.answerTask(ctx, w, "workplace", info, err)
}

// answerTask answers for a task the Producer enqueued (or refused): 400
// with the problems, 503 if Redis failed, else 202 with warnings (also as
// Warning headers, code 299: "miscellaneous persistent warning").
func (s *server) answerTask(ctx context.Context, w http.ResponseWriter, what string, info *asynq.TaskInfo, err error, warnings ...string) {
	var verr *tasks.ValidationError
	switch {
	case errors.As(err, &verr):
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid " + what, Problems: verr.Problems})
	case err != nil:
		s.logger.ErrorContext(ctx, "enqueue", "type", what, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: "could not enqueue: the queue's Redis failed"})
	default:
		for _, warning := range warnings {
			w.Header().Add("Warning", WarningHeader(warning))
		}
		writeJSON(w, http.StatusAccepted, TaskAccepted{TaskID: info.ID, Queue: info.Queue, Warnings: warnings})
	}
}

// WarningHeader formats text as the value of an HTTP Warning header with
// code 299 and no agent (RFC 7234, section 5.5): 299 - "text", with
// quotes and backslashes escaped.
func WarningHeader(text string) string {
	return `299 - "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(text) + `"`
}

// importFormats maps accepted Content-Types of an import body to formats.
var importFormats = map[string]importer.Format{
	"application/json":   importer.JSON,
	"application/yaml":   importer.YAML,
	"application/x-yaml": importer.YAML,
	"text/yaml":          importer.YAML,
	"text/x-yaml":        importer.YAML,
	"text/csv":           importer.CSV,
}

// ImportLimits are the importer limits of an HTTP import body.
var ImportLimits = importer.Limits{MaxBytes: MaxImportBody, MaxRows: importer.DefaultLimits.MaxRows, MaxDepth: importer.DefaultLimits.MaxDepth}

func (s *server) submitImport(w http.ResponseWriter, r *http.Request) {
	format, ok := importFormats[mediaType(r)]
	if !ok {
		writeJSON(w, http.StatusUnsupportedMediaType, ErrorBody{Error: "Content-Type must be application/json (or application/yaml, text/csv)"})
		return
	}
	q := r.URL.Query()
	id, portal := q.Get("id"), q.Get("portal")
	if portal == "" {
		portal = tasks.DefaultPortal
	}
	var problems []string
	if id != "" {
		if err := importer.ValidateID(id); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if err := tasks.CheckPortalName(portal); err != nil {
		problems = append(problems, err.Error())
	}
	policy, err := importer.ParseOnConflict(q.Get("on_conflict"))
	if err != nil {
		problems = append(problems, "on_conflict: "+err.Error())
	}
	plan, update := q.Get("plan") == "1", q.Get("update") == "1"
	if plan && update {
		problems = append(problems, "plan=1 creates nothing: drop update=1")
	}
	if problems != nil {
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid query", Problems: problems})
		return
	}
	raw, ok := readBody(w, r, MaxImportBody)
	if !ok {
		return
	}
	f, err := ImportLimits.ParseBytes(format, raw)
	if s.badImport(w, err) {
		return
	}
	// The Producer validates the whole file before it writes anything. An
	// empty id is derived from the content (tasks.DerivedImportID), exactly
	// as for `enqueue import`, so the same file gets the same ID either way.
	if plan {
		s.planImport(w, r, portal, f, policy)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
	defer cancel()
	res, err := s.producer.SubmitImportWith(ctx, portal, id, f, tasks.SubmitOptions{Update: update, OnConflict: policy})
	if s.badImport(w, err) {
		return
	}
	writeJSON(w, http.StatusAccepted, ImportAccepted{
		ID: res.ID, Total: res.Total, Enqueued: res.Enqueued, AlreadyCreated: res.AlreadyCreated, Existing: res.Existing,
		Reconciling: res.Reconciling,
	})
}

// badImport answers for a non-nil error of parsing, validating or submitting
// an import and reports whether it did.
func (s *server) badImport(w http.ResponseWriter, err error) bool {
	if err == nil {
		return false
	}
	var verr *importer.ValidationError
	var tverr *tasks.ValidationError
	switch {
	case errors.As(err, &verr):
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid import file", Problems: ProblemStrings(verr.Problems)})
		return true
	case errors.As(err, &tverr):
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid import", Problems: tverr.Problems})
		return true
	case errors.Is(err, importer.ErrInvalidID):
		writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "invalid import", Problems: []string{err.Error()}})
		return true
	case errors.Is(err, store.ErrConflict):
		writeJSON(w, http.StatusConflict, ErrorBody{Error: "an import with this ID exists with other content or for another portal; choose another ?id="})
		return true
	}
	s.logger.Error("submit import", "err", err)
	writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: "could not submit the import: the queue's Redis failed"})
	return true
}

// ProblemStrings renders import problems as the API lists them:
// "line 3: department \"x\": name is empty".
func ProblemStrings(ps []importer.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func (s *server) importStatus(w http.ResponseWriter, r *http.Request) {
	s.forImport(w, r, "import status", "could not read the import: the queue's Redis failed",
		func(ctx context.Context, id string) (int, any, error) {
			st, err := s.imports.Status(ctx, id)
			return http.StatusOK, st, err
		})
}

// maxTaskID bounds the task IDs looked up (asynq's are UUIDs; import
// items' are import:ID:KEY).
const maxTaskID = 512

func (s *server) taskStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.insp == nil || id == "" || len(id) > maxTaskID {
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("no task %q", id)})
		return
	}
	st, err := tasks.FindTask(s.insp, id)
	switch {
	case errors.Is(err, tasks.ErrTaskNotFound):
		writeJSON(w, http.StatusNotFound, ErrorBody{Error: fmt.Sprintf("no task %q in any portal's queue (finished tasks are kept for %s)", id, tasks.DefaultRetention)})
		return
	case err != nil:
		s.logger.ErrorContext(r.Context(), "task status", "task_id", id, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: "could not read the task: the queue's Redis failed"})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

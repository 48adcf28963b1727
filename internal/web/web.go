// Package web serves the pages for people on the worker's side port:
//
//	/imports/       every import, newest first, paged, with its progress
//	/imports/{id}   one import, live: progress, failures, retry, its tree
//	/portals/       each portal's limiter state: requests against the rate,
//	                503 cooldown, operating budgets, blocks, availability
//
// Every page answers JSON with ?format=json (the same data, for its own
// live updates and for tools). The pages are server-rendered html/template
// with one small embedded stylesheet and script (no CDN, no build step):
// the script polls the JSON every two seconds, updates the numbers in
// place, and fetches the page again to swap its regions when the version
// the JSON carries changes. Without JavaScript the pages work, frozen.
//
// Authentication is not done here: the worker mounts the handler behind
// the side port's basic auth (worker.Mount), like the dashboard.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/limiter"
	"github.com/b24queue/b24queue/tasks"
)

//go:embed templates/*.html assets/*
var files embed.FS

// RequestTimeout bounds the Redis reads of one request.
const RequestTimeout = 10 * time.Second

// Config is what the pages read.
type Config struct {
	// Imports is the import engine whose state the pages show and whose
	// failed items the retry button retries (through the enqueue API).
	// Required.
	Imports *tasks.Imports
	// Limiter is the shared limiter the workers use; nil leaves out the
	// portals' state (and /portals/ says so).
	Limiter *limiter.Limiter
	// Portals returns the portals to show on /portals/, in order: the
	// ones this worker serves (in a fleet of thousands of portals, those it
	// holds now, never the whole registry). Nil shows none.
	Portals func() []string
	// Methods are shown on /portals/ even before any answer (default: the
	// two create methods); methods with a recorded report show anyway.
	Methods []string
	// ItemsPerRequest is how many import items one request carries
	// (default b24.MaxBatch; 1 when the worker sends no batches), for the
	// estimated end of an import from the portal's budget.
	ItemsPerRequest int
	// MonitorPath is where asynqmon is mounted (default "/monitoring");
	// APIPath where the enqueue API is (default "/v1").
	MonitorPath string
	APIPath     string
	// Redact lists secret values that must never leave in an answer;
	// every occurrence is replaced by "***" (a second line of defence: the
	// pages show nothing secret by construction).
	Redact []string
	// Logger gets Redis errors; nil discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now), for tests.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if len(c.Methods) == 0 {
		c.Methods = []string{b24.MethodDepartmentAdd, b24.MethodAutomatedSolutionAdd}
	}
	if c.ItemsPerRequest <= 0 {
		c.ItemsPerRequest = b24.MaxBatch
	}
	if c.MonitorPath == "" {
		c.MonitorPath = "/monitoring"
	}
	if c.APIPath == "" {
		c.APIPath = "/v1"
	}
	c.MonitorPath = strings.TrimSuffix(c.MonitorPath, "/")
	c.APIPath = strings.TrimSuffix(c.APIPath, "/")
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// server holds what the handlers share; it is safe for concurrent use.
type server struct {
	cfg    Config
	pages  map[string]*template.Template
	assets assets
	pace   *paceMeter
}

// assets are the embedded stylesheet and script as inline elements, and
// the Content-Security-Policy that allows exactly them.
type assets struct {
	Style, Script template.HTML
	csp           string
}

// New returns the handler of the pages. Routes (full paths: mount it at
// "/imports/" and "/portals/"):
//
//	GET /imports/       ?page=N   the index of imports
//	GET /imports/{id}             one import
//	GET /portals/                 every portal's limiter state
//
// Each answers JSON instead with ?format=json. Unknown imports and paths
// answer 404, Redis failures 503. It panics if the embedded templates do
// not parse (a build defect, caught by every test).
func New(cfg Config) http.Handler {
	s := &server{cfg: cfg.withDefaults(), pace: newPaceMeter()}
	s.assets = loadAssets()
	s.pages = parsePages()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /imports/{$}", s.importsPage)
	mux.HandleFunc("GET /imports/{id}", s.importPage)
	mux.HandleFunc("GET /portals/{$}", s.portalsPage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "No such page: "+r.URL.Path)
	})
	return mux
}

func loadAssets() assets {
	css, err := files.ReadFile("assets/style.css")
	if err != nil {
		panic(err)
	}
	js, err := files.ReadFile("assets/live.js")
	if err != nil {
		panic(err)
	}
	if bytes.Contains(css, []byte("</")) || bytes.Contains(js, []byte("</")) {
		panic("web: an embedded asset contains \"</\": it cannot be inlined")
	}
	hash := func(b []byte) string {
		sum := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return assets{
		// The files are ours and contain no "</": inlined verbatim, they
		// hash to what the policy allows.
		Style:  template.HTML("<style>" + string(css) + "</style>"),
		Script: template.HTML("<script>" + string(js) + "</script>"),
		csp: "default-src 'none'; style-src " + hash(css) + "; script-src " + hash(js) +
			"; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
	}
}

// parsePages parses every page with the shared layout.
func parsePages() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(files, "templates/layout.html"))
	pages := map[string]*template.Template{}
	for _, name := range []string{"imports", "import", "portals", "error"} {
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(files, "templates/"+name+".html"))
	}
	return pages
}

// links are the places the pages link to.
type links struct {
	Monitor string // asynqmon's root, without a trailing slash
	API     string
}

// page is what the layout renders around a page's content.
type page struct {
	Title   string
	Section string // "imports" or "portals": the current navigation entry
	// Live turns the polling on; Version is what the JSON's version is
	// compared with.
	Live    bool
	Version string
	Assets  assets
	Links   links
	Now     time.Time
	Data    any
}

// wantsJSON reports whether the request asks for the JSON form.
func wantsJSON(r *http.Request) bool { return r.URL.Query().Get("format") == "json" }

// render answers with the page's HTML, or with data as JSON when asked.
func (s *server) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	var buf bytes.Buffer
	if wantsJSON(r) {
		if err := json.NewEncoder(&buf).Encode(p.Data); err != nil {
			s.cfg.Logger.Error("web: encode JSON", "page", name, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		s.write(w, http.StatusOK, "application/json; charset=utf-8", buf.Bytes())
		return
	}
	p.Assets, p.Links, p.Now = s.assets, links{Monitor: s.cfg.MonitorPath, API: s.cfg.APIPath}, s.cfg.Now()
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		s.cfg.Logger.Error("web: render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	s.write(w, http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
}

// write sends body with the headers every answer carries, every secret of
// Redact replaced.
func (s *server) write(w http.ResponseWriter, status int, contentType string, body []byte) {
	for _, secret := range s.cfg.Redact {
		if secret != "" {
			body = bytes.ReplaceAll(body, []byte(secret), []byte("***"))
		}
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", s.assets.csp)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errorPage is the data of the error page and the JSON error answer.
type errorPage struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
}

// fail answers with an error page (or JSON error) of status.
func (s *server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	var buf bytes.Buffer
	if wantsJSON(r) {
		_ = json.NewEncoder(&buf).Encode(errorPage{Message: msg})
		s.write(w, status, "application/json; charset=utf-8", buf.Bytes())
		return
	}
	p := page{Title: http.StatusText(status), Assets: s.assets, Links: links{Monitor: s.cfg.MonitorPath, API: s.cfg.APIPath},
		Now: s.cfg.Now(), Data: errorPage{Status: status, Message: msg}}
	if err := s.pages["error"].ExecuteTemplate(&buf, "layout", p); err != nil {
		http.Error(w, msg, status)
		return
	}
	s.write(w, status, "text/html; charset=utf-8", buf.Bytes())
}

// redisFailed logs err and answers 503.
func (s *server) redisFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.cfg.Logger.Error("web: "+what, "err", err)
	s.fail(w, r, http.StatusServiceUnavailable, fmt.Sprintf("Could not read %s: the queue's Redis failed. Try again.", what))
}

// ctx bounds a request's Redis work.
func (s *server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), RequestTimeout)
}

package web

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"time"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/tasks"
)

// ImportsPerPage is how many imports /imports/ lists per page.
const ImportsPerPage = 25

// ImportView is an import as both import pages show it.
type ImportView struct {
	ID     string `json:"id"`
	Portal string `json:"portal"`
	// Queue is the portal's asynq queue.
	Queue   string    `json:"queue"`
	Started time.Time `json:"started,omitzero"`
	Done    bool      `json:"done"`
	// State is "running", "finished", "finished with failures" or
	// "paused: portal unavailable".
	State    string         `json:"state"`
	Progress Progress       `json:"progress"`
	Pace     Pace           `json:"pace"`
	Blocked  *store.Blocked `json:"blocked,omitempty"`
}

// portalInfo is what an import's view needs of its portal.
type portalInfo struct {
	rate    float64 // effective rate, requests/s (0: unknown)
	blocked *store.Blocked
}

// portalInfo reads a portal's effective rate and availability (nothing
// without a limiter). Errors leave them unknown: the pages still show the
// import.
func (s *server) portalInfo(ctx context.Context, portal string) portalInfo {
	var pi portalInfo
	l := s.cfg.Limiter
	if l == nil {
		return pi
	}
	if r, err := l.Rate(ctx, portal); err == nil {
		pi.rate = r
	}
	u, down, err := l.Availability(ctx, portal)
	if err == nil && down {
		pi.blocked = &store.Blocked{Reason: fmt.Sprintf("portal %s unavailable: %s", portal, u.Code), Code: u.Code,
			Description: u.Description, Fix: tasks.FixFor(u.Code), Since: u.Since, NextCheck: u.NextProbe}
	}
	return pi
}

// importView builds the view of an import from its summary.
func (s *server) importView(sum store.Summary, pi portalInfo, now time.Time) ImportView {
	v := ImportView{ID: sum.ID, Portal: sum.Portal, Queue: tasks.QueueName(sum.Portal), Started: sum.CreatedAt, Done: sum.Done,
		Progress: newProgress(sum.Counts)}
	if !sum.Done {
		v.Blocked = pi.blocked
	}
	measured := s.pace.observe(sum.ID, now, v.Progress.Finished)
	left := sum.Counts.Pending + sum.Counts.Waiting
	v.Pace = newPace(measured, pi.rate*float64(s.cfg.ItemsPerRequest), left, sum.Done, now)
	switch {
	case v.Blocked != nil:
		v.State = "paused: portal unavailable"
	case !sum.Done:
		v.State = "running"
	case sum.Counts.Failed > 0:
		v.State = "finished with failures"
	default:
		v.State = "finished"
	}
	return v
}

// ImportsData is the data of /imports/ (and its JSON).
type ImportsData struct {
	// Version changes when the page must be fetched again (not when only
	// the numbers the script updates in place change).
	Version string       `json:"version"`
	Imports []ImportView `json:"imports"`
	Total   int          `json:"total"`
	Page    int          `json:"page"`
	Pages   int          `json:"pages"`
	// First and Last are the positions (from 1) of the imports shown.
	First, Last int `json:"-"`
}

func (s *server) importsPage(w http.ResponseWriter, r *http.Request) {
	pageNo, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || pageNo < 1 {
		pageNo = 1
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	list, err := s.cfg.Imports.Store().List(ctx, (pageNo-1)*ImportsPerPage, ImportsPerPage)
	if err != nil {
		s.redisFailed(w, r, "the imports", err)
		return
	}
	now := s.cfg.Now()
	d := ImportsData{Total: list.Total, Page: pageNo, Pages: max(1, (list.Total+ImportsPerPage-1)/ImportsPerPage), Imports: []ImportView{}}
	infos := map[string]portalInfo{}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d", list.Total, pageNo)
	for _, sum := range list.Imports {
		pi, ok := infos[sum.Portal]
		if !ok {
			pi = s.portalInfo(ctx, sum.Portal)
			infos[sum.Portal] = pi
		}
		v := s.importView(sum, pi, now)
		d.Imports = append(d.Imports, v)
		fmt.Fprintf(h, "|%s/%s", v.ID, v.State)
	}
	d.First, d.Last = list.Offset+1, list.Offset+len(d.Imports)
	d.Version = strconv.FormatUint(h.Sum64(), 36)
	s.render(w, r, "imports", page{Title: "Imports", Section: "imports", Live: true, Version: d.Version, Data: d})
}

// ImportData is the data of /imports/{id} (and its JSON).
type ImportData struct {
	Version string     `json:"version"`
	Import  ImportView `json:"import"`
	// Failures are the failed items in tree order, at most MaxFailures;
	// FailuresTotal counts them all.
	Failures      []Failure `json:"failures"`
	FailuresTotal int       `json:"failures_total"`
	// Tree is the import's items as a tree (not in the JSON: it can be
	// large; the items are in the status JSON of the enqueue API).
	Tree      []*Node `json:"-"`
	TreeShown int     `json:"tree_shown"`
	TreeTotal int     `json:"tree_total"`
	// Portal is the limiter's view of the import's portal.
	Portal *PortalBrief `json:"portal,omitempty"`
}

// Failure is a row of the failures table.
type Failure struct {
	Key    string `json:"key"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Parent string `json:"parent"` // the parent's key, or "#ID" of an existing department
	Reason Reason `json:"reason"`
}

// Limits of the import page.
const (
	// MaxFailures is how many failures the table shows.
	MaxFailures = 200
	// MaxTreeNodes is how many items the tree shows.
	MaxTreeNodes = 2000
)

func (s *server) importPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if importer.ValidateID(id) != nil {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("No import %q.", id))
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	st, err := s.cfg.Imports.Status(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("No import %q.", id))
		return
	}
	if err != nil {
		s.redisFailed(w, r, "the import", err)
		return
	}
	items, err := s.cfg.Imports.Store().Items(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.redisFailed(w, r, "the import's items", err)
		return
	}
	now := s.cfg.Now()
	pi := s.portalInfo(ctx, st.Portal)
	sum := store.Summary{ID: st.ID, Portal: st.Portal, CreatedAt: st.CreatedAt, Counts: st.Counts, Done: st.Done}
	d := ImportData{Import: s.importView(sum, pi, now), Failures: []Failure{}}
	if st.Blocked != nil {
		d.Import.Blocked, d.Import.State = st.Blocked, "paused: portal unavailable"
	}
	d.Portal = s.portalBrief(ctx, st.Portal)
	for _, it := range items {
		if it.State != store.ItemFailed {
			continue
		}
		d.FailuresTotal++
		if len(d.Failures) < MaxFailures {
			d.Failures = append(d.Failures, failureOf(it))
		}
	}
	d.Tree, d.TreeShown = buildTree(items, MaxTreeNodes)
	d.TreeTotal = len(items)
	d.Version = importVersion(d)
	s.render(w, r, "import", page{Title: "Import " + id, Section: "imports", Live: true, Version: d.Version, Data: d})
}

func failureOf(it store.ItemInfo) Failure {
	f := Failure{Key: it.Key, Name: it.Name, Kind: string(it.Kind), Parent: it.Parent, Reason: ParseReason(it.Reason)}
	if f.Parent == "" && it.Kind == store.KindDepartment {
		f.Parent = "#" + strconv.FormatInt(it.ParentID, 10)
	}
	return f
}

// importVersion changes when the regions of the import page must be
// fetched again: a failure, the end, the portal's state, or every 5% of
// progress (the tree).
func importVersion(d ImportData) string {
	h := fnv.New64a()
	c := d.Import.Progress.Counts
	fmt.Fprintf(h, "%s|%d|%d|%d", d.Import.State, c.Failed, c.Total, d.Import.Progress.Finished*20/max(c.Total, 1))
	if b := d.Import.Blocked; b != nil {
		fmt.Fprintf(h, "|%s", b.Code)
	}
	if p := d.Portal; p != nil {
		fmt.Fprintf(h, "|%v|%s", p.Cooldown.Unix(), p.Error)
		for _, m := range p.Blocked {
			fmt.Fprintf(h, "|%s@%d", m.Method, m.Until.Unix())
		}
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// Node is an item in the import's tree.
type Node struct {
	Item     store.ItemInfo
	Children []*Node
}

// buildTree nests items (in tree order, with depths, as store.Items
// returns them) under their parents, keeping the first limit items. It
// returns the roots and how many items it kept.
func buildTree(items []store.ItemInfo, limit int) ([]*Node, int) {
	var roots []*Node
	var stack []*Node // stack[d] is the last node of depth d
	kept := 0
	for _, it := range items {
		if kept == limit {
			break
		}
		n := &Node{Item: it}
		d := min(it.Depth, len(stack))
		stack = append(stack[:d], n)
		if d == 0 {
			roots = append(roots, n)
		} else {
			p := stack[d-1]
			p.Children = append(p.Children, n)
		}
		kept++
	}
	return roots, kept
}

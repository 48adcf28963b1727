package tasks

// Acceptance tests of the behaviours of a real portal (issue "Behave like a
// real Bitrix24 portal"): paging, portal-level errors, ERROR_CORE after
// save, redirects, refused token refreshes. The simulator does each by
// default or on a switch; these tests fail against a client that follows
// START, fails items on a revoked credential, or refreshes in a storm.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
)

// seedChildren seeds n departments under a new parent and returns it.
func seedChildren(b *bundle, name string, n int) int64 {
	parent := b.sim.SeedDepartment(name, 1, 0, 0)
	for i := range n {
		b.sim.SeedDepartment(fmt.Sprintf("%s child %03d", name, i), parent, 0, 0)
	}
	return parent
}

// checkOnce asserts that every department of f exists exactly once in the
// simulator under the right parent, with the ID the status holds, besides
// the seeded ones.
func checkOnce(t *testing.T, b *bundle, f *importer.File, st store.Status, seeded int) {
	t.Helper()
	byID := map[int64]b24test.Department{}
	for _, d := range b.sim.Departments() {
		byID[d.ID] = d
	}
	if got, want := len(byID), len(f.Departments)+seeded+1; got != want {
		t.Errorf("simulator holds %d departments, want %d (file %d, seeded %d, root)", got, want, len(f.Departments), seeded)
	}
	if s := b.sim.Stats(); s.DuplicateDepartments != 0 {
		t.Errorf("%d duplicate departments", s.DuplicateDepartments)
	}
	for _, d := range f.Departments {
		id := st.Created[d.Key]
		got, ok := byID[id]
		if !ok || got.Name != d.Name {
			t.Errorf("%s: status ID %d holds %+v, want %q", d.Key, id, got, d.Name)
			continue
		}
		want := int64(0)
		if d.ParentID != nil {
			want = *d.ParentID
		} else {
			want = st.Created[d.Parent]
		}
		if got.Parent != want {
			t.Errorf("%s: parent %d, want %d", d.Key, got.Parent, want)
		}
	}
}

// A name with LIKE wildcards matches every sibling: the lookup reads page
// after page (lowercase start; START would return page 1 for ever) and
// finds the department on page 3, with at most pages + 1 requests.
func TestLookupsPageThroughAParentWithManyChildren(t *testing.T) {
	t.Parallel()
	b := setup(t)
	parent := b.sim.SeedDepartment("Busy", 1, 0, 0)
	for i := range 120 {
		b.sim.SeedDepartment(fmt.Sprintf("Dept %03d", i), parent, 0, 0)
	}
	target := b.sim.SeedDepartment("Dept_%", parent, 0, 0) // last in tree order: page 3
	ctx := context.Background()

	before := b.sim.Stats().Requests
	d, found, err := b.b24portal.Client.FindDepartment(ctx, "Dept_%", parent)
	if err != nil || !found || d.ID != target {
		t.Fatalf("FindDepartment = %+v, %v, %v; want ID %d", d, found, err, target)
	}
	if n := b.sim.Stats().Requests - before; n > 4 {
		t.Errorf("single lookup sent %d requests for 3 pages, want at most 4", n)
	}

	// The batch lookup of a verify group reads the parent's 121 children
	// in 3 pages (one command each) and adopts the one on page 3.
	bs := withBatch(t, b)
	dg := asynq.Group(verifyGroup(b.portal, methodDepartmentAdd))
	for _, name := range []string{"Dept_%", "Brand new"} {
		task, err := NewDepartmentTask(DepartmentPayload{Portal: b.portal, Name: name, Parent: parent}, dg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	before = b.sim.Stats().Requests
	bs.startBatch(t, BatchServerConfig(true), 1)
	bs.waitIdle(t, 20*time.Second)
	s := b.sim.Stats()
	if s.DepartmentsCreated != 1 || s.DuplicateDepartments != 0 {
		t.Fatalf("created %d (duplicates %d), want only Brand new; %s", s.DepartmentsCreated, s.DuplicateDepartments, bs.where())
	}
	if n := s.Requests - before; n > 3+1+1 {
		t.Errorf("batch lookup and create sent %d requests, want at most 5 (3 pages + 1, and the create)", n)
	}
}

// loseAnswers is a front that forwards every request to the portal and
// then, with probability p, drops the answer of a request that creates
// departments: the portal did the work, the worker never hears of it. It
// counts the requests that create and the ones that look up.
type loseAnswers struct {
	p               float64
	mu              sync.Mutex
	rng             *rand.Rand
	creates, lookup atomic.Int64
}

func (l *loseAnswers) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		creates := bytes.Contains(body, []byte("department.add")) || strings.HasSuffix(r.URL.Path, "department.add")
		if creates {
			l.creates.Add(1)
		} else if bytes.Contains(body, []byte("department.get")) || strings.HasSuffix(r.URL.Path, "department.get") {
			l.lookup.Add(1)
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		l.mu.Lock()
		lose := creates && l.rng.Float64() < l.p
		l.mu.Unlock()
		if lose {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// A flat 300-department import under a parent that already has 120
// children, with half of the creating answers lost: every department exactly
// once, and the requests stay bounded (each retried batch reads the parent's
// pages once, never page 1 for ever).
func TestFlatImportUnderABusyParentWithLostAnswers(t *testing.T) {
	t.Parallel()
	lose := &loseAnswers{p: 0.5, rng: rand.New(rand.NewPCG(7, 11))}
	b := setup(t, func(c *setupConfig) { c.front = lose.front })
	bs := withBatch(t, b)
	parent := seedChildren(b, "Busy", 120)
	f := &importer.File{}
	for i := range 300 {
		f.Departments = append(f.Departments, importer.Department{Key: fmt.Sprintf("n%03d", i), Name: fmt.Sprintf("New %03d", i), ParentID: pid(parent)})
	}
	bs.startBatch(t, BatchServerConfig(true), 2)
	st := batchImport(t, bs, f, 2*time.Minute)
	if st.Counts.Failed != 0 || st.Counts.Total != 300 {
		t.Fatalf("counts %+v, failed %v", st.Counts, st.Failed)
	}
	checkOnce(t, b, f, st, 121)
	s := b.sim.Stats()
	creates, lookups := lose.creates.Load(), lose.lookup.Load()
	pages := int64(s.Calls["department.get"]["ok"])
	t.Logf("%d requests: %d creating, %d looking up (%d pages read)", s.Requests, creates, lookups, pages)
	if int64(s.Requests) > 2*creates+pages {
		t.Errorf("%d requests, want at most 2 × %d creating + %d pages", s.Requests, creates, pages)
	}
}

// fastProbes makes an unavailable portal's probes quick in tests.
func fastProbes(c *setupConfig) {
	c.limiterOpts = append(c.limiterOpts, limiter.WithProbeDelays(200*time.Millisecond, time.Second))
}

// portalDown runs a batch import during which cause makes the portal
// unusable for a while: no item fails, the import's status says why, and
// once restore undoes it the import finishes by itself, exactly once.
func portalDown(t *testing.T, b *bundle, wantCode string, cause, restore func()) {
	t.Helper()
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 2)
	f := treeFile([]int{1, 10, 60, 120}, 4)
	ctx := context.Background()
	res, err := bs.bimports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "some items created", func() (bool, string) {
		st, _ := bs.imports.Status(ctx, res.ID)
		return st.Counts.Created > 5, fmt.Sprintf("%+v", st.Counts)
	})
	cause()
	var st store.Status
	testutil.WaitFor(t, 20*time.Second, "the import blocked by the portal", func() (bool, string) {
		st, _ = bs.imports.Status(ctx, res.ID)
		return st.Blocked != nil, fmt.Sprintf("%+v", st.Counts)
	})
	if st.Blocked.Code != wantCode || !strings.Contains(st.Blocked.Reason, "portal "+b.portal+" unavailable: "+wantCode) || st.Blocked.Fix == "" {
		t.Errorf("blocked %+v, want code %s with a reason and a fix", st.Blocked, wantCode)
	}
	time.Sleep(2 * time.Second) // probes come and fail meanwhile
	if st, _ := bs.imports.Status(ctx, res.ID); st.Counts.Failed != 0 {
		t.Fatalf("items failed while the portal was unavailable: %v", st.Failed)
	}
	restore()
	st = bs.waitBatchDone(t, res.ID, time.Minute)
	if st.Counts.Failed != 0 || st.Blocked != nil {
		t.Fatalf("after restore: counts %+v, blocked %+v, failed %v", st.Counts, st.Blocked, st.Failed)
	}
	checkSimulator(t, b, f, st)
	if _, down, _ := b.limiter.Availability(ctx, b.portal); down {
		t.Error("the portal is still marked unavailable")
	}
}

// A webhook revoked in the middle of an import fails no item: the portal
// is paused fleet-wide and resumes by itself once the webhook works again.
func TestRevokedWebhookParksAndResumesByItself(t *testing.T) {
	t.Parallel()
	b := setup(t, fastProbes)
	portalDown(t, b, "INVALID_CREDENTIALS",
		func() { b.sim.SetWebhookRevoked(true) },
		func() { b.sim.SetWebhookRevoked(false) })
}

// A renamed portal answers 302: never followed (a GET would re-send the
// call without its body), reported as the portal having moved.
func TestMovedPortalIsNeverFollowed(t *testing.T) {
	t.Parallel()
	b := setup(t, fastProbes)
	portalDown(t, b, b24.CodePortalMoved,
		func() { b.sim.MoveTo("renamed.bitrix24.example") },
		func() { b.sim.MoveTo("") })
	if n := b.sim.Stats().RedirectedGETs; n != 0 {
		t.Errorf("%d GETs followed the redirect", n)
	}
}

// memTokens is a b24.TokenStore in memory, shared by the workers of a test.
type memTokens struct {
	mu sync.Mutex
	t  map[string]b24.Token
}

func (m *memTokens) Load(_ context.Context, key string) (b24.Token, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.t[key]
	return t, ok, nil
}

func (m *memTokens) Save(_ context.Context, key string, t b24.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.t[key] = t
	return nil
}

// A refresh refused with invalid_grant is asked once in the whole fleet
// (the OAuth server blocks apps that refresh in storms): the portal is
// unavailable with the OAuth code, no item fails, and new tokens (the app
// installed again) let the import finish by itself.
func TestRefusedRefreshIsAskedOnceFleetWide(t *testing.T) {
	t.Parallel()
	b := setup(t, fastProbes)
	cfg := b.sim.Config()
	tokens := &memTokens{t: map[string]b24.Token{}}
	oauthPortal := func(name string) *Portal {
		p, err := NewPortal(PortalConfig{Name: b.portal, Limits: limiter.Config{Rate: 48, Burst: 45}, Timeout: 10 * time.Second,
			OAuth: &b24.OAuthConfig{PortalURL: b.sim.OAuthPortalURL(), ClientID: cfg.OAuth.ClientID, ClientSecret: cfg.OAuth.ClientSecret,
				Token:         b24.Token{AccessToken: cfg.OAuth.AccessToken, RefreshToken: cfg.OAuth.RefreshToken},
				TokenEndpoint: b.sim.TokenEndpoint(), StoreKey: b.portal}},
			b.limiter, tokens, nil, b.logger.With("worker", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	b.b24portal = oauthPortal("a")
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	// A second worker with its own client, sharing the token store.
	second := withBatch(t, b)
	second.b24portal = oauthPortal("b")
	second.bhandler = b.newHandler(t, second.bimports)
	second.startBatch(t, BatchServerConfig(true), 1)

	f := treeFile([]int{1, 10, 60, 120}, 4)
	ctx := context.Background()
	res, err := bs.bimports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "some items created", func() (bool, string) {
		st, _ := bs.imports.Status(ctx, res.ID)
		return st.Counts.Created > 5, fmt.Sprintf("%+v", st.Counts)
	})
	b.sim.SetRefreshRevoked(true)
	b.sim.ExpireAccessTokens()
	before := b.sim.Stats().TokenRequests
	testutil.WaitFor(t, 20*time.Second, "the import blocked by invalid_grant", func() (bool, string) {
		st, _ := bs.imports.Status(ctx, res.ID)
		return st.Blocked != nil && st.Blocked.Code == b24.CodeInvalidGrant, fmt.Sprintf("%+v %+v", st.Counts, st.Blocked)
	})
	time.Sleep(3 * time.Second) // several probes come and go meanwhile
	if n := b.sim.Stats().TokenRequests - before; n != 1 {
		t.Errorf("%d refresh requests in the fleet, want 1", n)
	}
	if st, _ := bs.imports.Status(ctx, res.ID); st.Counts.Failed != 0 {
		t.Fatalf("items failed: %v", st.Failed)
	}
	// The app is installed again: a new pair reaches the token store.
	access, refresh := b.sim.Install()
	if err := tokens.Save(ctx, b.portal, b24.Token{AccessToken: access, RefreshToken: refresh, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	st := bs.waitBatchDone(t, res.ID, time.Minute)
	if st.Counts.Failed != 0 {
		t.Fatalf("failed %v", st.Failed)
	}
	checkSimulator(t, b, f, st)
}

// department.add saves, then sets the head; when that fails the portal
// answers ERROR_CORE although the department exists. It is adopted, never
// created twice and never reported failed, in batches and by plain call.
func TestErrorCoreAfterSaveIsAdopted(t *testing.T) {
	t.Parallel()
	for _, batch := range []bool{true, false} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *setupConfig) { c.sim.Faults.HeadErrorRate = 1 })
			bs := withBatch(t, b)
			bs.startBatch(t, BatchServerConfig(batch), 1)
			f := treeFile([]int{1, 8, 20}, 0)
			for i := range f.Departments {
				f.Departments[i].Head = int64(100 + i)
			}
			st := batchImport(t, bs, f, time.Minute)
			if st.Counts.Failed != 0 || st.Counts.Total != len(f.Departments) {
				t.Fatalf("counts %+v, failed %v", st.Counts, st.Failed)
			}
			checkSimulator(t, b, f, st)
			if n := b.sim.Stats().Calls["department.add"]["ERROR_CORE"]; n < len(f.Departments) {
				t.Errorf("ERROR_CORE answered %d times, want every create (%d)", n, len(f.Departments))
			}
		})
	}
}

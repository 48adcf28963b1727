package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/importer"
)

// One rule for names: a single task's name is trimmed and checked exactly
// as an import row's (importer.TrimName, importer.TextProblem), so the API
// and the command accept and refuse what import files do.
func TestSingleTasksAndImportRowsShareTheNameRule(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"Sales", "  Sales EU\t", " ", "Sales\x07", "Sales\u0085", "Caf\xe9", "line\nbreak",
		strings.Repeat("я", MaxNameLength), strings.Repeat("я", MaxNameLength+1), " " + strings.Repeat("я", MaxNameLength) + " ",
	} {
		want := importer.TextProblem("name", importer.TrimName(name))
		task, err := NewDepartmentTask(DepartmentPayload{Name: name, Parent: 1})
		var verr *ValidationError
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: refused (%v); the importer accepts it", name, err)
		case want != "" && (!errors.As(err, &verr) || len(verr.Problems) != 1 || verr.Problems[0] != want):
			t.Errorf("%q: err %v, want the importer's problem %q", name, err, want)
		case want == "":
			var p DepartmentPayload
			if err := json.Unmarshal(task.Payload(), &p); err != nil || p.Name != importer.TrimName(name) {
				t.Errorf("%q: payload name %q, want it trimmed", name, p.Name)
			}
		}
		_, werr := NewWorkplaceTask(WorkplacePayload{Title: name})
		if (werr == nil) != (want == "") {
			t.Errorf("%q: workplace err %v, want refused=%t", name, werr, want != "")
		}
	}
}

// parent_id 0 is refused with the reason, like an import row's.
func TestParentZeroIsRefusedWithTheReason(t *testing.T) {
	t.Parallel()
	_, err := NewDepartmentTask(DepartmentPayload{Name: "Top", Parent: 0})
	var verr *ValidationError
	if !errors.As(err, &verr) || len(verr.Problems) != 1 || verr.Problems[0] != importer.ParentIDProblem(0) {
		t.Fatalf("err = %v, want the importer's parent_id 0 problem", err)
	}
	if !strings.Contains(verr.Problems[0], "root department") {
		t.Errorf("problem %q does not say why", verr.Problems[0])
	}
}

// With KnownPortals a Producer refuses a portal no worker serves, naming
// the served ones, and writes nothing; an empty answer (no worker up) lets
// any valid portal through.
func TestProducerRefusesUnservedPortals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	served := []string{"acme", b.portal}
	p := NewProducer(b.client, b.imports, WithKnownPortals(func(context.Context) ([]string, error) { return served, nil }))

	file := &importer.File{Departments: []importer.Department{{Key: "a", Name: "A", ParentID: pid(1)}}}
	_, derr := p.EnqueueDepartment(ctx, DepartmentPayload{Portal: "nobody", Name: "Sales", Parent: 1})
	_, werr := p.EnqueueWorkplace(ctx, WorkplacePayload{Portal: "nobody", Title: "HR"})
	_, ierr := p.SubmitImport(ctx, "nobody", "", file)
	for _, err := range []error{derr, werr, ierr} {
		var verr *ValidationError
		if !errors.As(err, &verr) || len(verr.Problems) != 1 ||
			verr.Problems[0] != `portal "nobody": no worker serves it; the portals served now are acme, `+b.portal {
			t.Errorf("err = %v, want the unserved-portal problem", err)
		}
	}
	// A bad file is reported as such, before the portal.
	bad := &importer.File{Departments: []importer.Department{{Key: "a", Name: "A", ParentID: pid(0)}}}
	if _, err := p.SubmitImport(ctx, "nobody", "", bad); !errors.As(err, new(*importer.ValidationError)) {
		t.Errorf("bad file for an unserved portal: %v, want the file's problems", err)
	}
	if _, err := p.EnqueueDepartment(ctx, DepartmentPayload{Portal: b.portal, Name: "Sales", Parent: 1}); err != nil {
		t.Errorf("served portal refused: %v", err)
	}
	served = nil
	if _, err := p.EnqueueWorkplace(ctx, WorkplacePayload{Portal: b.portal, Title: "HR"}); err != nil {
		t.Errorf("nobody can tell, yet refused: %v", err)
	}
	if info, err := b.inspector.GetQueueInfo(b.queue); err != nil || info.Size != 2 {
		t.Errorf("queue = %+v, %v; want the 2 accepted tasks", info, err)
	}
	failing := NewProducer(b.client, nil, WithKnownPortals(func(context.Context) ([]string, error) { return nil, errors.New("redis down") }))
	if _, err := failing.EnqueueWorkplace(ctx, WorkplacePayload{Portal: b.portal, Title: "HR"}); err == nil || errors.As(err, new(*ValidationError)) {
		t.Errorf("lookup failure: %v, want a runtime error", err)
	}
}

// ServedPortals lists the portals of live asynq servers, and a portal no
// longer once its server stopped.
func TestServedPortalsFollowsLiveServers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	known := ServedPortals(b.inspector)
	has := func() bool {
		names, err := known(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(names, b.portal)
	}
	if has() {
		t.Fatal("portal served before any server started")
	}
	srv := asynq.NewServerFromRedisClient(b.rdb, asynq.Config{Queues: map[string]int{b.queue: 1}, LogLevel: asynq.FatalLevel})
	if err := srv.Start(b.handler.Mux()); err != nil {
		t.Fatal(err)
	}
	if !WaitServed(context.Background(), known, 5*time.Second, b.portal) || !has() {
		t.Error("portal not served after its server started")
	}
	start := time.Now()
	if WaitServed(context.Background(), known, 100*time.Millisecond, b.portal, "nobody-serves-this") {
		t.Error("WaitServed reported a portal nobody serves as served")
	}
	if took := time.Since(start); took < 100*time.Millisecond || took > 2*time.Second {
		t.Errorf("WaitServed gave up after %s, want about its timeout", took)
	}
	srv.Shutdown()
	if has() {
		t.Error("portal still served after its server shut down")
	}
	if p, ok := PortalOfQueue(QueueName("acme")); !ok || p != "acme" {
		t.Errorf("PortalOfQueue = %q, %t", p, ok)
	}
	if _, ok := PortalOfQueue("default"); ok {
		t.Error("PortalOfQueue accepted a queue that is not a portal's")
	}
}

// The refusal of an unserved portal names at most 10 of the served ones: a
// fleet may serve thousands.
func TestUnservedPortalProblemIsShort(t *testing.T) {
	t.Parallel()
	served := make([]string, 2000)
	for i := range served {
		served[i] = fmt.Sprintf("p%04d", i)
	}
	msg := UnservedPortalProblem("nope", served)
	if !strings.Contains(msg, "p0009 and 1990 more (enqueue portal list)") || strings.Contains(msg, "p0010") {
		t.Errorf("message = %q", msg)
	}
	if msg := UnservedPortalProblem("nope", served[:2]); !strings.HasSuffix(msg, "are p0000, p0001") {
		t.Errorf("short list: %q", msg)
	}
}

// With ServesPortal the list of known portals is read only to refuse: a
// served portal is accepted on the quick answer alone.
func TestServesPortalSkipsTheList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	listed := 0
	known := func(context.Context) ([]string, error) { listed++; return []string{"acme", b.portal}, nil }
	serves := func(_ context.Context, portal string) (bool, error) { return portal == b.portal, nil }
	p := NewProducer(b.client, b.imports, WithKnownPortals(known), WithServesPortal(serves))
	if _, err := p.EnqueueWorkplace(ctx, WorkplacePayload{Portal: b.portal, Title: "HR"}); err != nil || listed != 0 {
		t.Errorf("served portal: err %v, list read %d times, want accepted without it", err, listed)
	}
	_, err := p.EnqueueWorkplace(ctx, WorkplacePayload{Portal: "nobody", Title: "HR"})
	if !errors.As(err, new(*ValidationError)) || listed != 1 || !strings.Contains(err.Error(), "acme") {
		t.Errorf("unserved portal: err %v, list read %d times, want refused naming the served ones", err, listed)
	}
}

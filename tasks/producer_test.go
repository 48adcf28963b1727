package tasks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
)

// The producer rules: what the enqueue command, the HTTP API and the
// worker's configuration accept, decided here once.

func TestValidPortalName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"default": true, "acme": true, "a": true, "0-x_y": true, strings.Repeat("a", 63): true,
		"": false, "Acme": false, "-acme": false, "_a": false, "a.b": false, strings.Repeat("a", 64): false,
		"{a}": false, "a:b": false, "a b": false,
	} {
		if got := ValidPortalName(name); got != want {
			t.Errorf("ValidPortalName(%q) = %t, want %t", name, got, want)
		}
		if err := CheckPortalName(name); (err == nil) != want {
			t.Errorf("CheckPortalName(%q) = %v, want ok=%t", name, err, want)
		}
	}
	if !ValidPortalName(DefaultPortal) {
		t.Errorf("DefaultPortal %q is not a valid portal name", DefaultPortal)
	}
	const want = `portal "Not Valid": must match ^[a-z0-9][a-z0-9_-]{0,62}$`
	if err := CheckPortalName("Not Valid"); err == nil || err.Error() != want {
		t.Errorf("CheckPortalName = %v, want %q", err, want)
	}
}

func TestDerivedImportID(t *testing.T) {
	t.Parallel()
	f := &importer.File{Departments: []importer.Department{{Key: "a", Name: "A", ParentID: pid(1)}}}
	for portal, want := range map[string]string{
		"": f.ID(), DefaultPortal: f.ID(), "acme": f.ID() + "-acme",
	} {
		got := DerivedImportID(portal, f)
		if got != want {
			t.Errorf("DerivedImportID(%q) = %q, want %q", portal, got, want)
		}
		if err := importer.ValidateID(got); err != nil {
			t.Errorf("DerivedImportID(%q) = %q is not a valid import ID: %v", portal, got, err)
		}
	}
}

// A Producer refuses an invalid request with its typed error and writes
// nothing: no task, no import state.
func TestProducerRefusesInvalidRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := NewProducer(b.client, b.imports)
	ctx := context.Background()
	good := &importer.File{Departments: []importer.Department{{Key: "a", Name: "A", ParentID: pid(1)}}}
	bad := &importer.File{Departments: []importer.Department{{Key: "a", Name: " ", ParentID: pid(1)}}}
	taskProblems := func(t *testing.T, err error, want ...string) {
		t.Helper()
		var verr *ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("error %v (%T), want *ValidationError", err, err)
		}
		if len(verr.Problems) != len(want) {
			t.Fatalf("problems %q, want %d", verr.Problems, len(want))
		}
		for i, w := range want {
			if !strings.Contains(verr.Problems[i], w) {
				t.Errorf("problem %q lacks %q", verr.Problems[i], w)
			}
		}
	}

	_, err := p.EnqueueDepartment(ctx, DepartmentPayload{Portal: b.portal, Name: " ", Parent: -1, Sort: -5, Head: -2})
	taskProblems(t, err, "name is empty", "parent_id must be a positive integer", "sort -5", "head -2")
	_, err = p.EnqueueWorkplace(ctx, WorkplacePayload{Portal: "Not Valid", Title: "HR", TypeIDs: []int64{1, 0}})
	taskProblems(t, err, `portal "Not Valid"`, "type_ids[1]")

	// The portal and the ID are checked before the file.
	_, err = p.SubmitImport(ctx, "Not Valid", "bad:id", bad)
	taskProblems(t, err, `portal "Not Valid": must match `+PortalNamePattern)
	if _, err = p.SubmitImport(ctx, b.portal, "bad:id", bad); !errors.Is(err, importer.ErrInvalidID) {
		t.Errorf("bad ID: %v, want ErrInvalidID", err)
	}
	var ferr *importer.ValidationError
	if _, err = p.SubmitImport(ctx, b.portal, "", bad); !errors.As(err, &ferr) || len(ferr.Problems) != 1 {
		t.Errorf("bad file: %v, want the file's *importer.ValidationError", err)
	}

	if info, err := b.inspector.GetQueueInfo(b.queue); err == nil && info.Size != 0 {
		t.Errorf("%d tasks enqueued by refused requests", info.Size)
	}
	for _, id := range []string{DerivedImportID(b.portal, bad), DerivedImportID(b.portal, good)} {
		if _, err := b.imports.Status(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("import %s after refused requests: %v, want ErrNotFound", id, err)
		}
	}
}

// A Producer enqueues a valid request; an import without an ID gets
// DerivedImportID, resumes when submitted again, and conflicts with other
// content under the same ID.
func TestProducerEnqueuesValidRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := NewProducer(b.client, b.imports)
	ctx := context.Background()

	dep, err := p.EnqueueDepartment(ctx, DepartmentPayload{Portal: b.portal, Name: "Sales", Parent: 1})
	if err != nil || dep.Type != TypeDepartmentCreate || dep.Queue != b.queue {
		t.Fatalf("EnqueueDepartment = %+v, %v", dep, err)
	}
	wp, err := p.EnqueueWorkplace(ctx, WorkplacePayload{Portal: b.portal, Title: "HR"})
	if err != nil || wp.Type != TypeWorkplaceCreate || wp.Queue != b.queue {
		t.Fatalf("EnqueueWorkplace = %+v, %v", wp, err)
	}

	f := &importer.File{Departments: []importer.Department{{Key: "a", Name: "A", ParentID: pid(1)}, {Key: "b", Name: "B", Parent: "a"}}}
	res, err := p.SubmitImport(ctx, b.portal, "", f)
	if err != nil || res.ID != DerivedImportID(b.portal, f) || res.Total != 2 || res.Enqueued != 1 || res.Existing {
		t.Fatalf("SubmitImport = %+v, %v; want ID %s, 2 items, 1 enqueued", res, err, DerivedImportID(b.portal, f))
	}
	again, err := p.SubmitImport(ctx, b.portal, "", f)
	if err != nil || again.ID != res.ID || !again.Existing || again.Enqueued != 0 {
		t.Errorf("SubmitImport again = %+v, %v; want the same import, resumed", again, err)
	}
	other := &importer.File{Departments: []importer.Department{{Key: "x", Name: "X", ParentID: pid(1)}}}
	if _, err := p.SubmitImport(ctx, b.portal, res.ID, other); !errors.Is(err, store.ErrConflict) {
		t.Errorf("other content under %s: %v, want ErrConflict", res.ID, err)
	}
	if info, err := b.inspector.GetQueueInfo(b.queue); err != nil || info.Size != 3 {
		t.Errorf("queue = %+v, %v; want 3 tasks (department, workplace, import root)", info, err)
	}
}

package b24_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/b24/b24test"
)

// A portal of 5,000 departments and 60 workplaces is read in 3 requests
// (2,500 departments a request), every object exactly once.
func TestReadStructureReadsEverythingInFewRequests(t *testing.T) {
	t.Parallel()
	sim := b24test.NewServer(t, b24test.Config{Rate: 50, Burst: 50})
	parent := int64(1)
	for i := range 4999 {
		id := sim.SeedDepartment(fmt.Sprintf("D%04d", i), parent, 0, 0)
		if i%100 == 0 {
			parent = id
		}
	}
	for i := range 60 {
		sim.SeedWorkplace(fmt.Sprintf("W%02d", i), int64(i))
	}
	c, err := b24.NewWebhook(sim.WebhookURL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.ReadStructure(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Departments) != 5000 || len(s.Workplaces) != 60 {
		t.Fatalf("read %d departments and %d workplaces, want 5000 and 60", len(s.Departments), len(s.Workplaces))
	}
	seen := map[int64]bool{}
	for _, d := range s.Departments {
		if seen[d.ID] {
			t.Fatalf("department %d read twice", d.ID)
		}
		seen[d.ID] = true
	}
	if st := sim.Stats(); s.Requests != 3 || st.Requests != 3 {
		t.Errorf("%d requests (portal saw %d), want 3", s.Requests, st.Requests)
	}

	// A small portal: one request.
	small := b24test.NewServer(t, b24test.Config{})
	c2, _ := b24.NewWebhook(small.WebhookURL())
	s, err = c2.ReadStructure(context.Background(), false)
	if err != nil || len(s.Departments) != 1 || s.Requests != 1 {
		t.Errorf("empty portal: %d departments in %d requests, %v", len(s.Departments), s.Requests, err)
	}
}

// A page whose command fails is asked again; the read stays complete.
func TestReadStructureAsksFailedPagesAgain(t *testing.T) {
	t.Parallel()
	sim := b24test.NewServer(t, b24test.Config{Rate: 50, Burst: 50, Seed: 5, Faults: b24test.Faults{CommandErrorRate: 0.3}})
	for i := range 299 {
		sim.SeedDepartment(fmt.Sprintf("D%03d", i), 1, 0, 0)
	}
	c, err := b24.NewWebhook(sim.WebhookURL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.ReadStructure(context.Background(), false)
	if err != nil || len(s.Departments) != 300 {
		t.Fatalf("read %d departments, %v; want 300", len(s.Departments), err)
	}
	if sim.Stats().Faults["command_error"] == 0 {
		t.Fatal("no command failed: the test proves nothing")
	}
}

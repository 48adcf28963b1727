package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/limiter"
	"github.com/b24queue/b24queue/tasks"
)

// Shape of BenchmarkReconcile: the portal holds 50 divisions of 99 teams
// (5,000 departments); the import names 10 of those divisions with their
// teams (1,000 departments that exist) and 100 new teams under each of
// them (1,000 to create).
const (
	reconcileDivisions  = 50
	reconcileTeams      = 99
	reconcileImported   = 10
	reconcileNewTeams   = 100
	reconcileHeld       = reconcileDivisions * (1 + reconcileTeams)
	reconcileExisting   = reconcileImported * (1 + reconcileTeams)
	reconcileToCreate   = reconcileImported * reconcileNewTeams
	reconcileImportSize = reconcileExisting + reconcileToCreate
)

// BenchmarkReconcile imports 2,000 departments onto a portal that already
// holds 5,000 (1,000 of the import among them) with one batch-mode worker
// against a standard-plan portal, and reports:
//
//   - reconcile_requests: the REST requests that read the portal's
//     structure (department.get, crm.automatedsolution.list) before
//     anything was created; the bound is 3 for this import, and
//     the cost is one request per 2,500 existing departments plus a
//     constant, never a lookup per item;
//   - requests: every request of the import (reads, creates);
//   - adopted and created: what the import found and what it made
//     (1,000 each), with no duplicate on the portal.
func BenchmarkReconcile(b *testing.B) {
	var reads, requests, adopted, created float64
	for range b.N {
		b.StopTimer()
		rdb := benchRedis(b)
		portal := uniqueName("reconcile")
		cleanupRedis(b, rdb, tasks.QueueName(portal), portal)
		s := startSim(b, b24test.Config{Rate: batchRate, Burst: goodputBurst})
		f := seedReconcilePortal(s)

		imports := tasks.NewImports(rdb, asynq.NewClientFromRedisClient(rdb), portal, nil, tasks.WithBatch(true))
		if _, err := imports.Submit(context.Background(), portal, "reconcile", f); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = imports.Store().Delete(context.Background(), "reconcile") })

		b.StartTimer()
		start := time.Now()
		startBatchServer(b, portal, s.webhook, limiter.Config{Rate: batchRate, Burst: goodputBurst}, 0)
		st := waitImport(b, imports, "reconcile", 2*time.Minute)
		b.StopTimer()

		ps := s.Stats()
		if st.Counts.Adopted != reconcileExisting || st.Counts.Created != reconcileToCreate || ps.DepartmentsCreated != reconcileToCreate || ps.DuplicateDepartments != 0 {
			b.Fatalf("import %+v, portal created %d (%d duplicates); want %d adopted and %d created once each",
				st.Counts, ps.DepartmentsCreated, ps.DuplicateDepartments, reconcileExisting, reconcileToCreate)
		}
		n := s.structureReads()
		reads += float64(n)
		requests += float64(ps.Requests)
		adopted += float64(st.Counts.Adopted)
		created += float64(st.Counts.Created)
		b.Logf("%d departments onto a portal holding %d: %d adopted, %d created in %v; %d requests, %d of them reading the structure",
			reconcileImportSize, reconcileHeld, st.Counts.Adopted, st.Counts.Created, time.Since(start).Round(time.Millisecond), ps.Requests, n)
	}
	n := float64(b.N)
	b.ReportMetric(reads/n, "reconcile_requests")
	b.ReportMetric(requests/n, "requests")
	b.ReportMetric(adopted/n, "adopted")
	b.ReportMetric(created/n, "created")
}

// seedReconcilePortal fills s with the 5,000 departments and returns the
// import file of BenchmarkReconcile.
func seedReconcilePortal(s *sim) *importer.File {
	f := &importer.File{}
	root := int64(1)
	for d := range reconcileDivisions {
		name := fmt.Sprintf("Division %02d", d)
		id := s.SeedDepartment(name, 1, 500, 0)
		key := fmt.Sprintf("div%d", d)
		if d < reconcileImported {
			f.Departments = append(f.Departments, importer.Department{Key: key, Name: name, ParentID: &root, Sort: 500})
		}
		for t := range reconcileTeams {
			team := fmt.Sprintf("Team %02d-%02d", d, t)
			s.SeedDepartment(team, id, 500, 0)
			if d < reconcileImported {
				f.Departments = append(f.Departments, importer.Department{Key: fmt.Sprintf("t%d-%d", d, t), Name: team, Parent: key, Sort: 500})
			}
		}
		for t := range reconcileNewTeams {
			if d < reconcileImported {
				f.Departments = append(f.Departments, importer.Department{Key: fmt.Sprintf("n%d-%d", d, t), Name: fmt.Sprintf("New team %02d-%02d", d, t), Parent: key, Sort: 500})
			}
		}
	}
	return f
}

// waitImport polls the import's status until nothing is pending or
// waiting.
func waitImport(b *testing.B, imports *tasks.Imports, importID string, timeout time.Duration) (st store.Status) {
	b.Helper()
	testutil.WaitFor(b, timeout, "import "+importID+" done", func() (bool, string) {
		var err error
		if st, err = imports.Status(context.Background(), importID); err != nil {
			b.Fatal(err)
		}
		return st.Counts.Pending == 0 && st.Counts.Waiting == 0, fmt.Sprintf("%+v", st.Counts)
	})
	return st
}

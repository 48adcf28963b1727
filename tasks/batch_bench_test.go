package tasks

import (
	"sync"
	"testing"
	"time"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
)

// BenchmarkImportBatchVsSingle imports the same 100-item tree (depth 3, 90
// departments and 10 workplaces) on a standard-plan portal (2 req/s, burst
// 50) call by call (the plain mux, ungrouped tasks) and in batch mode (two
// workers with the aggregator), both at once on their own portals, and
// reports items per request and per second of each mode and their ratios
// (batch ÷ call-by-call). Call by call is bound by the portal's 2 req/s, so
// one run takes about 50 s: use -benchtime 1x.
func BenchmarkImportBatchVsSingle(b *testing.B) {
	f := treeFile([]int{1, 9, 80}, 10)
	items := float64(len(f.Departments) + len(f.Workplaces))
	type mode struct {
		requests int
		elapsed  time.Duration
	}
	var batch, single mode
	for b.Loop() {
		bb := setup(b, rate2)
		bs := withBatch(b, bb)
		bs.startBatch(b, BatchServerConfig(true), 2)
		sb := setup(b, rate2)
		sb.start(b, nil)

		var wg sync.WaitGroup
		var berr, serr error
		wg.Go(func() {
			start := time.Now()
			_, berr = bs.importAndWait(f, 5*time.Minute)
			batch.elapsed += time.Since(start)
			batch.requests += bb.sim.Stats().Requests
		})
		wg.Go(func() {
			start := time.Now()
			_, serr = importAndWaitSingle(sb, f, 5*time.Minute)
			single.elapsed += time.Since(start)
			single.requests += sb.sim.Stats().Requests
		})
		wg.Wait()
		if berr != nil || serr != nil {
			b.Fatalf("batch: %v; call by call: %v", berr, serr)
		}
	}
	n := items * float64(b.N)
	bPerReq, sPerReq := n/float64(batch.requests), n/float64(single.requests)
	bPerSec, sPerSec := n/batch.elapsed.Seconds(), n/single.elapsed.Seconds()
	b.ReportMetric(bPerReq, "batch-items/req")
	b.ReportMetric(sPerReq, "single-items/req")
	b.ReportMetric(bPerReq/sPerReq, "ratio-items/req")
	b.ReportMetric(bPerSec, "batch-items/s")
	b.ReportMetric(sPerSec, "single-items/s")
	b.ReportMetric(bPerSec/sPerSec, "ratio-items/s")
}

// importAndWaitSingle submits f without batch mode and waits until it is
// done; safe on any goroutine.
func importAndWaitSingle(b *bundle, f *importer.File, timeout time.Duration) (store.Status, error) {
	bs := &batchSetup{bundle: b, bimports: b.imports}
	return bs.importAndWait(f, timeout)
}

package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/tasks"
)

// Shape of the generated import file: 10,000 departments in the flat form,
// one root under the portal's department 1, every other department the
// child of department (i−1)/6, so a complete 6-ary tree seven levels deep
// (the deepest department has six ancestors in the file).
const (
	importRows   = 10_000
	importFanout = 6
)

// writeImportFile writes the benchmark's YAML import file and returns its
// path.
func writeImportFile(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "org-10k.yaml")
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(fh)
	fmt.Fprintln(w, "departments:")
	for i := range importRows {
		fmt.Fprintf(w, "  - key: d%d\n    name: Department %d\n", i, i)
		if i == 0 {
			fmt.Fprintln(w, "    parent_id: 1")
		} else {
			fmt.Fprintf(w, "    parent: d%d\n", (i-1)/importFanout)
		}
		if i%10 == 0 {
			fmt.Fprintf(w, "    sort: %d\n    head: %d\n", 100+i%500, 1+i%50)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// heapSampler records the largest HeapInuse seen between start and stop,
// sampling every millisecond (ReadMemStats stops the world for
// microseconds; the sampling is not in the measured phases' own path, but
// it shares the CPUs).
type heapSampler struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	peak  uint64
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stopc: make(chan struct{})}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = ms.HeapInuse
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stopc:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				h.peak = max(h.peak, ms.HeapInuse)
			}
		}
	}()
	return h
}

// stop ends sampling and returns the peak HeapInuse in bytes.
func (h *heapSampler) stop() uint64 {
	close(h.stopc)
	h.wg.Wait()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return max(h.peak, ms.HeapInuse)
}

// BenchmarkImportPrepare10k measures what `enqueue import` does before any
// worker runs, for a 10,000-department YAML file (~0.6 MB) against the
// local Redis:
//
//   - validate_ms: read and parse the file (importer.ParseFile) and validate
//     the whole of it (File.Validate); issue target < 1 s;
//   - enqueue_ms: tasks.Imports.Submit, which validates again (it is the
//     API other services call), writes the import's state to Redis (items,
//     parent → children index, counts) and enqueues what can start: here
//     the one root, since children are released as their parents are
//     created; issue target < 10 s;
//   - peak_heap_MB: the largest HeapInuse of the process during both,
//     sampled every millisecond after a GC (so it includes the test
//     binary's own few MB), and alloc_MB: the bytes allocated by both.
func BenchmarkImportPrepare10k(b *testing.B) {
	b.StopTimer()
	rdb := benchRedis(b)
	path := writeImportFile(b)
	ctx := context.Background()
	var validate, enqueue time.Duration
	var peak, alloc float64
	for i := range b.N {
		portal := uniqueName("import")
		prefix := portal
		cleanupRedis(b, rdb, tasks.QueueName(portal), prefix)
		imports := tasks.NewImports(rdb, asynq.NewClientFromRedisClient(rdb), prefix, nil)
		importID := fmt.Sprintf("bench-%d", i)
		b.Cleanup(func() { _ = imports.Store().Delete(context.Background(), importID) })

		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		hs := startHeapSampler()
		b.StartTimer()

		t0 := time.Now()
		f, _, err := importer.ParseFile(path)
		if err == nil {
			err = f.Validate()
		}
		t1 := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		res, err := imports.Submit(ctx, portal, importID, f)
		t2 := time.Now()

		b.StopTimer()
		p := hs.stop()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if err != nil {
			b.Fatal(err)
		}
		if res.Total != importRows || res.Enqueued != 1 {
			b.Fatalf("Submit = %+v, want %d items and the root enqueued", res, importRows)
		}
		validate += t1.Sub(t0)
		enqueue += t2.Sub(t1)
		peak += float64(p) / (1 << 20)
		alloc += float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20)
		b.Logf("%d rows: parse+validate %v, Submit %v, peak heap %.1f MB, allocated %.1f MB",
			importRows, t1.Sub(t0).Round(time.Microsecond), t2.Sub(t1).Round(time.Microsecond),
			float64(p)/(1<<20), float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	}
	n := float64(b.N)
	b.ReportMetric(validate.Seconds()*1000/n, "validate_ms")
	b.ReportMetric(enqueue.Seconds()*1000/n, "enqueue_ms")
	b.ReportMetric(peak/n, "peak_heap_MB")
	b.ReportMetric(alloc/n, "alloc_MB")
}

// Package demo runs the whole of b24queue on one machine with nothing but
// Go: a simulated portal, two workers sharing one request budget, and an
// import of an org chart with a progress display. It is what `make demo`
// runs, and the first thing the README asks a new user to try.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/examples"
	"github.com/b24queue/b24queue/internal/cli"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/fleet"
	"github.com/b24queue/b24queue/internal/worker"
	"github.com/b24queue/b24queue/tasks"
)

// Options configure a demo run. The zero value of a field means its default.
type Options struct {
	// File is the org chart to import (default: examples/org.yaml, built
	// into the binary, so the demo runs from any directory).
	File string
	// RedisURL is tried first (default REDIS_URL, else redis://127.0.0.1:6379/0);
	// when it does not answer, an embedded in-process Redis is used.
	RedisURL string
	// Workers is the number of worker processes simulated (default 2).
	Workers int
	// Rate and Burst of the simulated portal (default 5 req/s, 10): slow
	// enough to watch the limiter pace the import.
	Rate  float64
	Burst int
	// Listen is the side port of the first worker: dashboard, metrics,
	// enqueue API (default 127.0.0.1:8080; ":0" style picks a free port).
	Listen string
	// Stay keeps the workers and the dashboard running after the import
	// until ctx is cancelled (Ctrl-C), so the dashboard can be explored.
	Stay bool
	// LogFile receives the workers' JSON logs (default: discarded; the demo
	// talks through stdout).
	LogFile io.Writer
}

func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Rate <= 0 {
		o.Rate = 5
	}
	if o.Burst <= 0 {
		o.Burst = 10
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.RedisURL == "" {
		o.RedisURL = config.DefaultRedisURL
	}
	return o
}

// demoPortal is the portal name of the demo: its queue and keys stay apart
// from any real work on the same Redis.
const demoPortal = "demo"

// Run runs the demo and returns when the import is finished (or, with Stay,
// when ctx is cancelled). It returns an error if anything failed, including
// a failed import item; a cancelled ctx (Ctrl-C) is a normal end, nil.
func Run(ctx context.Context, o Options, stdout io.Writer) error {
	o = o.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	file, removeFile, err := orgFile(o.File)
	if err != nil {
		return err
	}
	defer removeFile()

	redisURL, closeRedis, err := pickRedis(ctx, o.RedisURL, stdout)
	if err != nil {
		return err
	}
	defer closeRedis()
	if err := clearDemoQueue(redisURL); err != nil {
		return err
	}

	sim, err := b24test.Start(b24test.Config{Rate: o.Rate, Burst: o.Burst, Latency: 20 * time.Millisecond}, "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start the simulated portal: %w", err)
	}
	defer sim.Close()
	fmt.Fprintf(stdout, "simulated portal at %s (%.0f req/s, burst %d)\n", sim.URL, o.Rate, o.Burst)

	logs := o.LogFile
	if logs == nil {
		logs = io.Discard
	}
	logger := worker.NewLogger(logs, slog.LevelInfo)
	workers, sidePort, err := startWorkers(ctx, o, redisURL, sim.WebhookURL(), logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while starting
		}
		return err
	}
	defer workers.stop(cancel)
	fmt.Fprintf(stdout, "%d workers share one request budget; dashboard: %s/monitoring/  imports: %s/imports/\n\n", o.Workers, sidePort, sidePort)
	// The import refuses a portal no live worker serves while others are
	// served (a shared Redis): wait until the workers have announced theirs.
	waitServed(ctx, redisURL, demoPortal)

	getenv := func(k string) string {
		switch k {
		case "REDIS_URL":
			return redisURL
		case "B24_PORTAL":
			return demoPortal
		}
		return ""
	}
	// A fresh import ID per run: the simulated portal is new every time, so
	// the import state of an earlier run must not count as created here.
	importID := fmt.Sprintf("demo-%d", time.Now().Unix())
	code := cli.Run(ctx, []string{"import", file, "--wait", "--id", importID}, getenv, nil, stdout, stdout)
	st := sim.Stats()
	fmt.Fprintf(stdout, "\nportal: %d departments and %d workplaces created, %d requests, %d answered 503, %d duplicates\n",
		st.DepartmentsCreated, st.WorkplacesCreated, st.Requests, st.Rejected503, st.DuplicateDepartments+st.DuplicateWorkplaces)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(stdout, "interrupted: stopping the workers")
		return nil
	case code != cli.ExitOK:
		return fmt.Errorf("import finished with exit code %d", code)
	}
	if o.Stay {
		fmt.Fprintf(stdout, "dashboard: %s/monitoring/  imports: %s/imports/  portals: %s/portals/  (Ctrl-C to stop)\n", sidePort, sidePort, sidePort)
		<-ctx.Done()
	}
	return nil
}

// orgFile returns the path of the org chart to import: path, or the
// built-in examples/org.yaml written to a temporary file (removed by the
// returned func).
func orgFile(path string) (string, func(), error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", nil, fmt.Errorf("--file: %w", err)
		}
		return path, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "b24q-demo-")
	if err != nil {
		return "", nil, err
	}
	file := filepath.Join(dir, "org.yaml")
	if err := os.WriteFile(file, examples.OrgYAML, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	return file, func() { _ = os.RemoveAll(dir) }, nil
}

// pickRedis returns the URL of a Redis that answers: url, or an embedded
// one started here (closed by the returned func).
func pickRedis(ctx context.Context, url string, stdout io.Writer) (string, func(), error) {
	opt, err := redis.ParseURL(url)
	if err == nil {
		opt.DialTimeout, opt.MaxRetries = 500*time.Millisecond, -1
		rdb := redis.NewClient(opt)
		err = rdb.Ping(ctx).Err()
		rdb.Close()
		if err == nil {
			fmt.Fprintf(stdout, "using Redis at %s\n", config.RedactURL(url))
			return url, func() {}, nil
		}
	}
	mr, merr := miniredis.Run()
	if merr != nil {
		return "", nil, errors.Join(fmt.Errorf("no Redis at %s: %w", config.RedactURL(url), err), merr)
	}
	fmt.Fprintf(stdout, "no Redis answers at %s: using an embedded in-process Redis (miniredis) at %s; its data is gone when the demo ends\n",
		config.RedactURL(url), mr.Addr())
	return "redis://" + mr.Addr() + "/0", mr.Close, nil
}

type runningWorkers struct {
	wg   sync.WaitGroup
	errs chan error
}

// stop cancels the workers' context and waits for their graceful shutdown.
func (r *runningWorkers) stop(cancel context.CancelFunc) {
	cancel()
	r.wg.Wait()
}

func startWorkers(ctx context.Context, o Options, redisURL, webhook string, logger *slog.Logger) (*runningWorkers, string, error) {
	limits := config.Limits{Rate: o.Rate, Burst: o.Burst, OperatingLimit: 480 * time.Second, OperatingWindow: 10 * time.Minute}
	r := &runningWorkers{errs: make(chan error, o.Workers)}
	sidePort := "" // the first worker's: dashboard, pages, API
	for i := range o.Workers {
		cfg := config.Worker{
			Redis:           config.Redis{URL: redisURL},
			Portals:         []config.Portal{{Name: demoPortal, WebhookURL: webhook, Limits: limits}},
			Defaults:        limits,
			Timeout:         10 * time.Second,
			Concurrency:     5,
			ShutdownTimeout: 5 * time.Second,
			Batch:           true,
			LogLevel:        "info",
		}
		if i == 0 {
			cfg.Listen = o.Listen
		}
		w, err := worker.New(cfg, logger.With("worker", i+1))
		if err != nil {
			return nil, "", fmt.Errorf("worker %d: %w", i+1, err)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := w.Run(ctx); err != nil && ctx.Err() == nil {
				r.errs <- fmt.Errorf("worker %d: %w", i+1, err)
			}
		}()
		if i == 0 {
			addr, err := waitAddr(ctx, w, r.errs)
			if err != nil {
				return nil, "", err
			}
			sidePort = "http://" + addr
		}
	}
	return r, sidePort, nil
}

// servedWait bounds waitServed.
const servedWait = 10 * time.Second

// waitServed waits, at most servedWait, until a live worker serves portal
// (the fleet's members, fleet.Known).
func waitServed(ctx context.Context, redisURL, portal string) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	tasks.WaitServed(ctx, fleet.Known(rdb, ""), servedWait, portal)
}

// waitAddr waits until the worker's side port listens and returns it, or
// for the worker's error (a busy port: worker.ListenError).
func waitAddr(ctx context.Context, w *worker.Worker, errs <-chan error) (string, error) {
	for range 250 {
		if a := w.Addr(); a != nil {
			return a.String(), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case err := <-errs:
			var lerr *worker.ListenError
			if errors.As(err, &lerr) {
				return "", fmt.Errorf("the dashboard's port %s is in use by another process: give the demo another one, e.g. --listen 127.0.0.1:8081", lerr.Addr)
			}
			return "", err
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "", errors.New("the first worker's side port did not start within 5 s (see --listen)")
}

// clearDemoQueue drops what an interrupted earlier demo left in the demo
// portal's own queue: its tasks name departments of a simulator that is gone.
func clearDemoQueue(redisURL string) error {
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		return err
	}
	in := asynq.NewInspector(opt)
	defer in.Close()
	err = in.DeleteQueue(tasks.QueueName(demoPortal), true)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		return fmt.Errorf("clear the demo queue: %w", err)
	}
	return nil
}

// Command bench measures goodput with real worker processes: it serves a
// simulated portal, queues N department tasks for a portal name of its own,
// starts -procs `worker` binaries against them (each a separate OS process
// with its own Redis connections and limiter), and prints the same figures
// as bench.BenchmarkGoodput, which runs its workers in-process:
//
//	go run ./cmd/bench -procs 3 -rate 50 -n 1000
//
// goodput_ratio = created per second ÷ (R + B/T): in T seconds a portal
// draining R req/s with a bucket of B accepts at most B + R·T requests. T
// runs from the start of the worker processes (the tasks are queued
// beforehand) to the portal's answer to the last department.add, so it
// includes the processes' start-up.
//
// Without -worker it builds ./cmd/worker into a temporary directory first
// (run it from the repository root). It uses REDIS_URL (default DB 7 of
// the local Redis) and deletes its queue and limiter keys afterwards.
// Exit status: 0 when every department was created once, 1 otherwise, 2 on
// bad flags.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/keys"
	"github.com/b24queue/b24queue/tasks"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

type options struct {
	procs, n, burst, concurrency int
	rate                         float64
	latency                      time.Duration
	workerBin, redisURL          string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "b24bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.workerBin == "" {
		if o.workerBin, err = buildWorker(ctx, tmp, stdout, stderr); err != nil {
			return err
		}
	}
	redisOpt, err := asynq.ParseRedisURI(o.redisURL)
	if err != nil {
		return usageError{fmt.Errorf("-redis-url: %w", err)}
	}

	sim, err := b24test.Start(b24test.Config{Rate: o.rate, Burst: o.burst, Latency: o.latency}, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sim.Close()

	portal := "bench-procs-" + randomHex(5)
	queue := tasks.QueueName(portal)
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	inspector := asynq.NewInspector(redisOpt)
	defer inspector.Close()
	defer cleanup(redisOpt, inspector, queue, portal)
	if err := enqueue(ctx, client, portal, o.n); err != nil {
		return err
	}

	portalsFile := filepath.Join(tmp, "portals.yaml")
	doc := fmt.Sprintf("portals:\n  %s:\n    webhook_url: ${BENCH_WEBHOOK_URL}\n", portal)
	if err := os.WriteFile(portalsFile, []byte(doc), 0o600); err != nil {
		return err
	}
	env := workerEnv(o, portalsFile, sim.WebhookURL())
	start := time.Now()
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			_ = p.Wait()
		}
	}()
	for range o.procs {
		cmd := exec.Command(o.workerBin)
		cmd.Env = env
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start a worker: %w", err)
		}
		procs = append(procs, cmd)
	}

	last, err := waitCreated(ctx, sim, o, start)
	if err != nil {
		return err
	}
	return report(stdout, o, sim.Stats(), last.Sub(start))
}

// parseOptions parses the command line.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.procs, "procs", 3, "worker processes")
	fs.IntVar(&o.n, "n", 1000, "departments to create")
	fs.Float64Var(&o.rate, "rate", 50, "portal and limiter rate, requests per second")
	fs.IntVar(&o.burst, "burst", 50, "portal and limiter burst")
	fs.IntVar(&o.concurrency, "concurrency", 10, "WORKER_CONCURRENCY of each process")
	fs.DurationVar(&o.latency, "latency", 20*time.Millisecond, "simulated processing time per call")
	fs.StringVar(&o.workerBin, "worker", "", "worker binary (default: build ./cmd/worker)")
	fs.StringVar(&o.redisURL, "redis-url", envOr("REDIS_URL", "redis://127.0.0.1:6379/7"), "Redis")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usageError{err}
	}
	if o.procs < 1 || o.n < 1 || o.rate <= 0 || o.burst < 1 || o.concurrency < 1 {
		return o, usageError{errors.New("-procs, -n, -rate, -burst and -concurrency must be positive")}
	}
	return o, nil
}

// buildWorker builds ./cmd/worker into dir and returns the binary's path.
func buildWorker(ctx context.Context, dir string, stdout, stderr io.Writer) (string, error) {
	bin := filepath.Join(dir, "worker")
	fmt.Fprintln(stdout, "building ./cmd/worker")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/worker")
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build the worker: %w", err)
	}
	return bin, nil
}

// enqueue queues n department tasks for portal.
func enqueue(ctx context.Context, client *asynq.Client, portal string, n int) error {
	for i := range n {
		t, err := tasks.NewDepartmentTask(tasks.DepartmentPayload{Portal: portal, Name: fmt.Sprintf("Department %05d", i), Parent: 1})
		if err == nil {
			_, err = client.EnqueueContext(ctx, t)
		}
		if err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}
	return nil
}

// workerEnv is the environment of every worker process.
func workerEnv(o options, portalsFile, webhookURL string) []string {
	return append(os.Environ(),
		"REDIS_URL="+o.redisURL,
		"B24_PORTALS_FILE="+portalsFile,
		"BENCH_WEBHOOK_URL="+webhookURL,
		fmt.Sprintf("B24_RATE=%g", o.rate),
		fmt.Sprintf("B24_BURST=%d", o.burst),
		fmt.Sprintf("WORKER_CONCURRENCY=%d", o.concurrency),
		"WORKER_LISTEN=off",
		"LOG_LEVEL=warn",
	)
}

// waitCreated returns when the portal has created o.n departments.
// b24test.Start serves the portal itself, so the end of the run is the
// moment the count is seen (polled every 5 ms), not the answer's time.
func waitCreated(ctx context.Context, sim *b24test.Server, o options, start time.Time) (time.Time, error) {
	deadline := start.Add(time.Duration(float64(o.n)/o.rate*float64(time.Second)) + time.Minute)
	for {
		st := sim.Stats()
		if st.DepartmentsCreated >= o.n {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("only %d of %d departments created by %v", st.DepartmentsCreated, o.n, deadline.Sub(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// report prints the run's figures and fails unless every department was
// created once.
func report(stdout io.Writer, o options, st b24test.Stats, elapsed time.Duration) error {
	bound := float64(o.burst) + o.rate*elapsed.Seconds()
	fmt.Fprintf(stdout, "%d worker processes × concurrency %d, portal %g req/s burst %d, %v latency\n", o.procs, o.concurrency, o.rate, o.burst, o.latency)
	fmt.Fprintf(stdout, "created %d in %v: %.2f/s; bound R + B/T = %.2f/s\n", st.DepartmentsCreated, elapsed.Round(time.Millisecond), float64(o.n)/elapsed.Seconds(), bound/elapsed.Seconds())
	fmt.Fprintf(stdout, "goodput_ratio %.4f  503s %d  requests %d  max/s %d  duplicates %d\n",
		float64(o.n)/bound, st.Rejected503, st.Requests, st.MaxPerSecond, st.DuplicateDepartments)
	if st.DepartmentsCreated != o.n || st.DuplicateDepartments != 0 {
		return fmt.Errorf("created %d departments with %d duplicates, want %d once each", st.DepartmentsCreated, st.DuplicateDepartments, o.n)
	}
	return nil
}

// cleanup removes the run's queue and the workers' limiter and attempt keys
// (keys.DefaultPrefix, the worker's default, under the run's own portal name).
func cleanup(opt asynq.RedisConnOpt, in *asynq.Inspector, queue, portal string) {
	_ = in.DeleteQueue(queue, true)
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, pattern := range []string{keys.New(keys.DefaultPrefix).PortalPattern(portal), "asynq:{" + queue + "}:*"} {
		iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Unlink(ctx, iter.Val())
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

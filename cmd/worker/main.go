// Command worker runs Bitrix24 department and workplace tasks from the Redis
// queue, with an HTTP side port for health, metrics and the dashboard.
// Configuration comes from the environment and flags: run it with --help.
// `worker healthcheck` asks a running worker's side port for /healthz (a
// container healthcheck without curl).
//
// Exit status: 0 after a clean shutdown (SIGTERM/SIGINT) or --help, 1 on a
// runtime failure (healthcheck: unhealthy), 2 on a configuration problem,
// a busy side port included.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/cliflag"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	installGlobalLoggers = func(logger *slog.Logger) {
		// Libraries that log through globals (asynq's metrics exporter uses
		// the log package, go-redis its own logger) get the same JSON lines.
		slog.SetDefault(logger)
		redis.SetLogger(worker.RedisLogger(logger))
	}
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// installGlobalLoggers, when set (by main only: tests run in parallel and
// must not share globals), routes the process-wide loggers to logger.
var installGlobalLoggers func(logger *slog.Logger)

// run is the whole command, testable without a process: it returns the exit
// status. lookup is os.LookupEnv (an empty WORKER_LISTEN turns the side port
// off, which needs "set but empty" told from "unset").
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, args[1:], lookup, stdout, stderr)
	}
	cfg, err := config.LoadWorkerLookup(args, lookup)
	var usage *config.UsageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, config.WorkerUsage())
		return 0
	case errors.As(err, &usage):
		return configProblems(stderr, usage.Problems...)
	case err != nil:
		fmt.Fprintln(stderr, "worker:", err)
		return 1
	}
	logger := worker.NewLogger(stderr, cfg.Level())
	if installGlobalLoggers != nil {
		installGlobalLoggers(logger)
	}
	w, err := worker.New(cfg, logger)
	if err != nil {
		logger.Error("cannot build the worker", "err", err)
		return 1
	}
	err = w.Run(ctx)
	var busy *worker.ListenError
	switch {
	case errors.As(err, &busy):
		return configProblems(stderr, busy.Error())
	case err != nil:
		logger.Error("worker failed", "err", err)
		return 1
	}
	return 0
}

// configProblems prints configuration problems and returns exit status 2.
func configProblems(stderr io.Writer, problems ...string) int {
	fmt.Fprintln(stderr, "worker: invalid configuration:")
	for _, p := range problems {
		fmt.Fprintln(stderr, "  "+p)
	}
	fmt.Fprintln(stderr, "run worker --help for every setting")
	return 2
}

const healthcheckUsage = `Usage: worker healthcheck [--listen ADDR] [--path PATH] [--timeout D]

Asks the side port of a running worker for /healthz and exits 0 when it answers
200 (Redis reachable), 1 otherwise, 2 on a usage error. It needs no curl, so it
serves as a container healthcheck (distroless image):
  healthcheck: {test: ["CMD", "worker", "healthcheck"]}
With --listen and --path it checks another local server the same way, e.g. the
simulator: worker healthcheck --listen 127.0.0.1:8090 --path /_sim/stats

Flags:
  --listen ADDR   the worker's side port (default $WORKER_LISTEN, else 127.0.0.1:8080;
                  0.0.0.0 and :: are asked on loopback)
  --path PATH     the path to ask (default /healthz)
  --timeout D     how long to wait for the answer (default 3s)
`

// healthcheck is `worker healthcheck`.
func healthcheck(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) int {
	fs := cliflag.NewFlagSet("worker healthcheck")
	listen := fs.String("listen", "", "")
	path := fs.String("path", "/healthz", "")
	timeout := fs.Duration("timeout", worker.DefaultHealthcheckTimeout, "")
	help := func(w io.Writer) { fmt.Fprint(w, healthcheckUsage) }
	if _, code, ok := cliflag.Command("worker healthcheck", fs, args, 0, help, stdout, stderr); !ok {
		return code
	}
	addr := *listen
	if addr == "" {
		addr, _ = lookup("WORKER_LISTEN")
	}
	switch addr = strings.TrimSpace(addr); {
	case addr == "":
		addr = "127.0.0.1:8080"
	case strings.EqualFold(addr, "off"):
		fmt.Fprintln(stderr, "worker healthcheck: the side port is off (WORKER_LISTEN=off): nothing to ask")
		return cliflag.ExitUsage
	}
	if err := worker.Healthcheck(ctx, addr, *path, *timeout); err != nil {
		fmt.Fprintln(stderr, "worker healthcheck: unhealthy:", err)
		return 1
	}
	return 0
}

// Command worker runs Bitrix24 department and workplace tasks from the Redis
// queue, with an HTTP side port for health, metrics and the dashboard.
// Configuration comes from the environment and flags: run it with --help.
//
// Exit status: 0 after a clean shutdown (SIGTERM/SIGINT) or --help, 1 on a
// runtime failure, 2 on a configuration problem.
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
	"syscall"

	"github.com/redis/go-redis/v9"

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
	cfg, err := config.LoadWorkerLookup(args, lookup)
	var usage *config.UsageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, config.WorkerUsage())
		return 0
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "worker: invalid configuration:")
		for _, p := range usage.Problems {
			fmt.Fprintln(stderr, "  "+p)
		}
		fmt.Fprintln(stderr, "run worker --help for every setting")
		return 2
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
	if err := w.Run(ctx); err != nil {
		logger.Error("worker failed", "err", err)
		return 1
	}
	return 0
}

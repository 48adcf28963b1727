// Command demo shows b24queue end to end on one machine: a simulated
// Bitrix24 portal, two workers sharing one request budget, and the import of
// an org chart with progress. See internal/demo.
//
// Exit status: 0 when the import is done (and, by default, after Ctrl-C
// stops the dashboard), 1 when something failed, 2 on a usage error.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/cliflag"
	"github.com/b24queue/b24queue/internal/demo"
	"github.com/b24queue/b24queue/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `Usage: demo [flags]

Runs a simulated Bitrix24 portal, two workers sharing one request budget and
an import of an org chart with progress, then serves the dashboard until
Ctrl-C. Uses REDIS_URL (default redis://127.0.0.1:6379/0) when it answers,
else an embedded in-process Redis. Runs from any directory: the example org
chart is built in.

Flags:
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := cliflag.NewFlagSet("demo")
	var o demo.Options
	fs.StringVar(&o.File, "file", "", "`path` of the org chart to import, YAML, JSON or CSV (default: the built-in examples/org.yaml)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "`address` of the first worker's side port: dashboard, metrics, enqueue API")
	fs.Float64Var(&o.Rate, "rate", 5, "requests per second the simulated portal drains (a `number`)")
	fs.IntVar(&o.Burst, "burst", 10, "the simulated portal's bucket size (a `number`)")
	fs.IntVar(&o.Workers, "workers", 2, "`number` of worker processes to run")
	fs.BoolVar(&o.Stay, "stay", true, "keep the dashboard running after the import until Ctrl-C (--stay=false: exit)")
	logFile := fs.String("log", "", "write the workers' JSON logs to this `file`")
	help := func(w io.Writer) {
		fmt.Fprint(w, usage)
		cliflag.PrintDefaults(w, fs)
	}
	if _, code, ok := cliflag.Command("demo", fs, args, 0, help, stdout, stderr); !ok {
		return code
	}
	o.RedisURL = getenv("REDIS_URL")
	// go-redis logs dial failures through a global logger: the demo says
	// itself which Redis it uses, so its lines go with the workers' logs.
	logs := io.Discard
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return cliflag.ExitUsage
		}
		defer f.Close()
		o.LogFile, logs = f, f
	}
	redis.SetLogger(worker.RedisLogger(worker.NewLogger(logs, slog.LevelInfo)))
	if err := demo.Run(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	return 0
}

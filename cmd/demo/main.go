// Command demo shows b24queue end to end on one machine: a simulated
// Bitrix24 portal, two workers sharing one request budget, and the import of
// an org chart with progress. See internal/demo.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/b24queue/b24queue/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o demo.Options
	fs.StringVar(&o.File, "file", "examples/org.yaml", "org chart to import (YAML, JSON or CSV)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "side port of the first worker (dashboard, metrics)")
	fs.Float64Var(&o.Rate, "rate", 5, "requests per second the simulated portal drains")
	fs.IntVar(&o.Burst, "burst", 10, "the simulated portal's bucket size")
	fs.IntVar(&o.Workers, "workers", 2, "worker processes to run")
	fs.BoolVar(&o.Stay, "stay", true, "keep the dashboard running after the import until Ctrl-C")
	logFile := fs.String("log", "", "write the workers' JSON logs to this file")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: demo [flags]\n\nRuns a simulated portal, %s workers and an import with progress, then serves the dashboard.\nUses REDIS_URL (default redis://127.0.0.1:6379/0) when it answers, else an embedded Redis.\n\n", "two")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	o.RedisURL = getenv("REDIS_URL")
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			fmt.Fprintln(stderr, "demo:", err)
			return 2
		}
		defer f.Close()
		o.LogFile = f
	}
	if err := demo.Run(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	return 0
}

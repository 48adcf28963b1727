// Command enqueue enqueues Bitrix24 departments and workplaces for the
// b24queue workers, imports whole org structures and shows their progress.
// See `enqueue --help`; the logic lives in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/cli"
)

// quiet drops go-redis's own log lines (dial retries and the like): the
// command reports a Redis failure once, in words, on stderr.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quiet{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Command b24sim serves the simulated Bitrix24 portal of package b24test on
// a port, for the demo, docker-compose and multi-process tests. It prints the
// webhook URL (with its secret, for local use) once on stdout and logs one
// JSON line per request to stderr, never a secret.
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
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "b24sim:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "b24sim:", err)
		os.Exit(1)
	}
}

const usage = `Usage: b24sim [flags]

Serves a simulated Bitrix24 portal: /rest/USER/SECRET/METHOD (webhook),
/rest/METHOD with auth (OAuth), /oauth/token/, and the controls
/_sim/{stats,departments,workplaces,faults,conditions,block,move} and
/_sim/NAME?on=1 for every condition flag below (deleted, overload, ...).
Zero values mean the documented default.

Flags:
`

// usageError is a bad command line (exit code 2).
type usageError struct{ error }

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("b24sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8090", "address to serve on")
	var cfg b24test.Config
	cfg.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg.Logger = log
	srv, err := b24test.Start(cfg, *listen)
	if err != nil {
		return usageError{err}
	}
	log.Info("b24sim listening", "url", srv.URL, "rate", srv.Config().Rate, "burst", srv.Config().Burst)
	fmt.Fprintf(stdout, "B24_WEBHOOK_URL=%s\n", srv.WebhookURL())
	fmt.Fprintf(stdout, "OAuth: portal %s token endpoint %s client_id %s\n", srv.OAuthPortalURL(), srv.TokenEndpoint(), srv.Config().OAuth.ClientID)

	<-ctx.Done()
	log.Info("b24sim shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

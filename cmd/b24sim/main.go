// Command b24sim serves the simulated Bitrix24 portal of package b24test on
// a port, for the demo, docker-compose and multi-process tests. It prints the
// webhook URL (with its secret, for local use) once on stdout as
// "B24_WEBHOOK_URL=..." and logs one JSON line per request to stderr, never
// a secret. Flags follow the commands' one style (internal/cliflag): help on
// stdout, usage errors on stderr with status 2 and a suggestion.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/cliflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var done exitStatus
	switch {
	case err == nil:
	case errors.As(err, &done): // help, or a usage error already printed
		os.Exit(int(done))
	default:
		fmt.Fprintln(os.Stderr, "b24sim:", err)
		os.Exit(1)
	}
}

// exitStatus ends run with a status whose message (help, a usage error) is
// already printed, in the commands' one style (internal/cliflag).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

const usage = `Usage: b24sim [flags]

Serves a simulated Bitrix24 portal: /rest/USER/SECRET/METHOD (webhook),
/rest/METHOD with auth (OAuth), /oauth/token/, and the controls
/_sim/{stats,departments,workplaces,faults,conditions,block,move} and
/_sim/NAME?on=1 for every condition flag below (deleted, overload, ...).
Zero values mean the documented default.

Flags:
`

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cliflag.NewFlagSet("b24sim")
	listen := fs.String("listen", "127.0.0.1:8090", "`address` to serve on")
	var cfg b24test.Config
	cfg.RegisterFlags(fs)
	help := func(w io.Writer) {
		fmt.Fprint(w, usage)
		cliflag.PrintDefaults(w, fs)
	}
	if _, code, ok := cliflag.Command("b24sim", fs, args, 0, help, stdout, stderr); !ok {
		return exitStatus(code)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg.Logger = log
	srv, err := b24test.Start(cfg, *listen)
	if err != nil {
		return exitStatus(cliflag.UsageError(stderr, "b24sim", err.Error()))
	}
	log.Info("b24sim listening", "url", srv.URL, "rate", srv.Config().Rate, "burst", srv.Config().Burst)
	fmt.Fprintf(stdout, "B24_WEBHOOK_URL=%s\n", srv.WebhookURL())
	fmt.Fprintf(stdout, "# for a shell: export B24_WEBHOOK_URL=%s\n", srv.WebhookURL())
	fmt.Fprintf(stdout, "OAuth: portal %s token endpoint %s client_id %s\n", srv.OAuthPortalURL(), srv.TokenEndpoint(), srv.Config().OAuth.ClientID)

	<-ctx.Done()
	log.Info("b24sim shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// Package cli is the enqueue command: enqueue one department or workplace,
// import an org-structure file, follow an import, and show its status. The
// main in cmd/enqueue only calls [Run]; everything testable is here.
//
// Exit codes (design.md): 0 ok, 1 runtime failure (Redis unreachable, an
// import item failed), 2 usage or validation error.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/cliflag"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/tasks"
)

// Exit codes of the enqueue command.
const (
	ExitOK      = 0
	ExitFailure = 1 // runtime failure, including failed import items
	ExitUsage   = 2 // bad flags, bad environment, invalid input
)

// PingTimeout bounds the check that Redis answers before anything is sent.
const PingTimeout = 5 * time.Second

// App is the enqueue command with its tunables. The zero value is ready to
// use and behaves like [Run]; tests shorten the intervals and set Prefix to
// keep their Redis keys apart. An App may run several commands concurrently.
type App struct {
	// Prefix of the import state's Redis keys; "" means the default
	// prefix of internal/keys, which is also the worker's.
	Prefix string
	// PollInterval is how often --wait reads the import's status; 0 means
	// progress.DefaultInterval (500 ms).
	PollInterval time.Duration
	// LineInterval is how often --wait prints a plain progress line when
	// stdout is not a terminal; 0 means progress.DefaultLineInterval (2 s).
	LineInterval time.Duration
	// Now is the clock of the plain progress lines; nil means time.Now.
	Now func() time.Time
	// Logger receives the import engine's logs; nil discards them (the
	// command talks to its user through stdout and stderr).
	Logger *slog.Logger
	// AnyPortal accepts a portal no live worker serves even when others are
	// served (by default the command refuses it, exit 2, naming the served
	// portals). Tests that share one Redis with unrelated workers set it.
	AnyPortal bool
	// ServedInterval is how often --wait asks which portals live workers
	// serve; 0 means 5 s.
	ServedInterval time.Duration
}

// commands are the enqueue subcommands, for suggestions.
var commands = []string{"department", "workplace", "import", "status", "task", "portal", "help"}

// Run runs the enqueue command with args (without the program name) and
// returns its exit code. getenv reads the environment (REDIS_URL,
// REDIS_CLUSTER_ADDRS, B24_PORTAL); stdin is unused today but part of the
// signature so that a future "import -" needs no API change. Results go to
// stdout, diagnostics to stderr.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	var a App
	return a.Run(ctx, args, getenv, stdin, stdout, stderr)
}

// Run is [Run] with a's settings.
func (a *App) Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{app: a, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		if cmd == "help" && len(rest) > 0 {
			return a.Run(ctx, []string{rest[0], "--help"}, getenv, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return ExitOK
	case "department":
		return e.department(ctx, rest)
	case "workplace":
		return e.workplace(ctx, rest)
	case "import":
		return e.importFile(ctx, rest)
	case "status":
		return e.status(ctx, rest)
	case "task":
		return e.task(ctx, rest)
	case "portal":
		return e.portal(ctx, rest)
	}
	fmt.Fprintf(stderr, "enqueue: %s\nRun 'enqueue --help' for usage.\n", cliflag.UnknownCommand(cmd, commands))
	return ExitUsage
}

// env is one run of the command: its streams and its environment.
type env struct {
	app            *App
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
}

func (e *env) logger() *slog.Logger {
	if e.app.Logger != nil {
		return e.app.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// usageErr prints a usage problem of cmd and returns ExitUsage.
func (e *env) usageErr(cmd, format string, args ...any) int {
	return cliflag.UsageError(e.stderr, "enqueue "+cmd, fmt.Sprintf(format, args...))
}

// fail prints a runtime failure and returns ExitFailure.
func (e *env) fail(cmd string, err error) int {
	fmt.Fprintf(e.stderr, "enqueue %s: %v\n", cmd, err)
	return ExitFailure
}

// newFlags returns a silent flag set: parse prints its errors and help.
func newFlags(cmd string) *flag.FlagSet { return cliflag.NewFlagSet("enqueue " + cmd) }

// parse parses args with fs in the commands' one flag style (package
// cliflag: flags anywhere, `enqueue import org.yaml --wait`, suggestions
// for misspelled flags) and returns the positional ones. ok is false when
// the command must stop with code: help printed on stdout (0) or a usage
// error on stderr (2).
func (e *env) parse(fs *flag.FlagSet, cmd, help string, args []string) (pos []string, code int, ok bool) {
	return cliflag.Command("enqueue "+cmd, fs, args, -1, func(w io.Writer) { fmt.Fprint(w, help) }, e.stdout, e.stderr)
}

// parseID parses the arguments of a command that takes one ID (what names
// it in messages: "IMPORT_ID", "TASK_ID") and --json. ok is false when the
// command must stop with code.
func (e *env) parseID(cmd, help, what string, args []string) (id string, asJSON bool, code int, ok bool) {
	fs := newFlags(cmd)
	j := fs.Bool("json", false, "")
	pos, code, ok := e.parse(fs, cmd, help, args)
	switch {
	case !ok:
		return "", false, code, false
	case len(pos) == 0:
		return "", false, e.usageErr(cmd, "missing %s", what), false
	case len(pos) > 1:
		return "", false, e.usageErr(cmd, "unexpected argument %q after %s", pos[1], what), false
	}
	return pos[0], *j, 0, true
}

// printJSON prints v indented on stdout; a failure to write is a runtime
// failure (code, false).
func (e *env) printJSON(cmd string, v any) (int, bool) {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return e.fail(cmd, err), false
	}
	return 0, true
}

// connection is what the commands that talk to Redis need.
type connection struct {
	cfg    config.Enqueue
	rdb    redis.UniversalClient
	client *asynq.Client
	insp   *asynq.Inspector // shares rdb
}

// Close closes the Redis connection (the asynq client shares it and has
// nothing of its own to close).
func (c *connection) Close() { _ = c.rdb.Close() }

// connect loads the environment and checks that Redis answers. On failure
// it has printed the problem and returns the exit code.
func (e *env) connect(ctx context.Context, cmd string) (*connection, int) {
	cfg, err := config.LoadEnqueueEnv(e.getenv)
	if err != nil {
		var uerr *config.UsageError
		if errors.As(err, &uerr) {
			for _, p := range uerr.Problems {
				fmt.Fprintf(e.stderr, "enqueue %s: %s\n", cmd, p)
			}
			return nil, ExitUsage
		}
		return nil, e.fail(cmd, err)
	}
	rdb, err := cfg.Redis.UniversalClient()
	if err != nil {
		fmt.Fprintf(e.stderr, "enqueue %s: %v\n", cmd, err)
		return nil, ExitUsage
	}
	pctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		fmt.Fprintf(e.stderr, "enqueue %s: cannot reach Redis at %s (REDIS_URL): %v\n", cmd, cfg.Redis, err)
		return nil, ExitFailure
	}
	return &connection{cfg: cfg, rdb: rdb, client: asynq.NewClientFromRedisClient(rdb), insp: asynq.NewInspectorFromRedisClient(rdb)}, 0
}

// portalFor returns the --portal flag's value, or the environment's portal
// (B24_PORTAL, default "default") when the flag is empty.
func (e *env) portalFor(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := strings.TrimSpace(e.getenv("B24_PORTAL")); p != "" {
		return p
	}
	return tasks.DefaultPortal
}

// printProblems prints one line per problem of a task validation error.
func (e *env) printProblems(cmd string, err *tasks.ValidationError) int {
	for _, p := range err.Problems {
		fmt.Fprintf(e.stderr, "enqueue %s: %s\n", cmd, p)
	}
	return ExitUsage
}

const envHelp = `Environment:
  REDIS_URL            Redis to enqueue to (default redis://127.0.0.1:6379/0);
                       redis://, rediss://, redis-socket://, redis-sentinel://
  REDIS_CLUSTER_ADDRS  Redis Cluster seed nodes host:port,... (wins over REDIS_URL)
  B24_PORTAL           portal name tasks are for when --portal is not given
                       (default "default", the portal of the worker's B24_WEBHOOK_URL)
`

const usage = `Usage: enqueue COMMAND [ARGS]

Enqueue Bitrix24 departments and digital workplaces for the b24queue workers.

Commands:
  department --name NAME --parent-id ID [--sort N] [--head USER_ID] [--portal P]
      enqueue one department and print its task ID
  workplace --title TITLE [--type-ids 1,2,3] [--portal P]
      enqueue one digital workplace and print its task ID
  import FILE [--id IMPORT_ID] [--dry-run | --plan] [--update] [--wait] [--portal P]
      validate an org-structure file (YAML, JSON or CSV) and import it;
      --plan shows what it would create, adopt or update on the portal
  status IMPORT_ID [--json]
      show an import's progress: created, pending, waiting on parent, failed
  task TASK_ID [--json]
      show what became of one task: its state, the created ID or the error
  portal add|list|status|remove|resume [NAME]
      register portals at run time; see which are available and why not

Run 'enqueue COMMAND --help' for a command's flags and examples.

Flags are written --flag VALUE or --flag=VALUE, before or after the other
arguments. A portal no running worker serves is refused while other portals
are served; when no worker runs at all, tasks wait in Redis until one does.

Exit codes: 0 ok, 1 runtime failure (Redis unreachable, failed import items,
unknown task or import), 2 usage or validation error (nothing was enqueued).

` + envHelp

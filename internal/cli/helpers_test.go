package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/cli"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/b24queue/b24queue/tasks"
)

// testRedisDB is the Redis DB of this package's tests, and testRedisURL the
// same database as a URL for REDIS_URL.
const (
	testRedisDB  = 5
	testRedisURL = "redis://" + testutil.RedisAddr + "/5"
)

// unreachableRedisURL is a Redis that never answers, with a password that
// must not be printed.
const unreachableRedisURL = "redis://admin:s3cr3t-pw@127.0.0.1:1/5"

// fixture is what a test of the command needs: an App with its own key
// prefix, an environment naming its own portal (hence its own queue), and an
// inspector of that queue.
type fixture struct {
	t      *testing.T
	app    *cli.App
	env    map[string]string
	portal string
	queue  string
	rdb    *redis.Client
	insp   *asynq.Inspector
}

// setup returns a fixture; withRedis false leaves rdb and insp nil and
// points REDIS_URL at nothing, which proves a command does not need Redis.
func setup(t *testing.T, withRedis bool) *fixture {
	t.Helper()
	f := &fixture{
		t:      t,
		portal: testutil.Unique("cli-"),
		app: &cli.App{
			Prefix:       testutil.Unique("clitest-"),
			PollInterval: 20 * time.Millisecond,
			LineInterval: time.Nanosecond,
			// Other tests of the package run workers for their own portals
			// on the same Redis: only the tests of the check turn it on.
			AnyPortal: true,
		},
	}
	f.queue = tasks.QueueName(f.portal)
	f.env = map[string]string{"REDIS_URL": unreachableRedisURL, "B24_PORTAL": f.portal}
	if !withRedis {
		return f
	}
	f.rdb = testutil.Redis(t, testRedisDB) // skips, or fails in CI, when Redis does not answer
	f.env["REDIS_URL"] = testRedisURL
	f.insp = asynq.NewInspectorFromRedisClient(f.rdb)
	t.Cleanup(func() {
		_ = f.insp.DeleteQueue(f.queue, true)
		testutil.DeleteKeys(f.rdb, f.app.Prefix+"*")
	})
	return f
}

// run runs the command and returns its exit code and output.
func (f *fixture) run(args ...string) (code int, stdout, stderr string) {
	f.t.Helper()
	return f.runFor(30*time.Second, args...)
}

// runFor is run with the command's context ending after d.
func (f *fixture) runFor(d time.Duration, args ...string) (code int, stdout, stderr string) {
	f.t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	code = f.app.Run(ctx, args, func(k string) string { return f.env[k] }, bytes.NewReader(nil), &out, &errOut)
	return code, out.String(), errOut.String()
}

// queued returns the number of tasks in the fixture's queue in any state.
func (f *fixture) queued() int {
	f.t.Helper()
	info, err := f.insp.GetQueueInfo(f.queue)
	if err != nil {
		return 0 // asynq does not know the queue: nothing was ever enqueued
	}
	return info.Size
}

// writeFile writes content to name in a fresh temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Package scripts holds the shell scripts of the build (with-redis, which
// `make test` runs the suite under) and their tests.
package scripts

import (
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/internal/testutil"
)

// withRedis runs scripts/with-redis with env (and nothing else) and args.
func withRedis(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	cmd := exec.Command(bash, append([]string{"with-redis"}, args...)...)
	cmd.Env = env
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// Without a Redis and without redis-server, `make test` stops at once with
// one line that says how to get one, and runs nothing.
func TestWithRedisStopsAtOnceWithoutRedis(t *testing.T) {
	t.Parallel()
	addr := testutil.ClosedAddr(t)
	out, errOut, code := withRedis(t, []string{"PATH=" + t.TempDir(), "B24Q_TEST_REDIS=" + addr}, "/bin/echo", "the tests ran")
	if code != 2 || out != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing run", code, out)
	}
	want := "no Redis at " + addr + " and no redis-server in PATH: install one (apt-get install redis-server, brew install redis)"
	if !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("stderr %q, want one line starting %q", errOut, want)
	}
}

// Without a Redis but with redis-server, the command runs against a
// private server on the tests' address, which is gone afterwards.
func TestWithRedisStartsAPrivateServer(t *testing.T) {
	t.Parallel()
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server in PATH")
	}
	addr := testutil.ClosedAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	ping := `exec 3<>/dev/tcp/` + host + `/` + port + `; printf 'PING\r\n' >&3; IFS= read -r reply <&3; echo "$reply"`
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin:" + server[:strings.LastIndex(server, "/")], "B24Q_TEST_REDIS=" + addr}
	out, errOut, code := withRedis(t, env, "bash", "-c", ping)
	if code != 0 || !strings.HasPrefix(out, "+PONG") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the command to reach Redis", code, out, errOut)
	}
	if !strings.Contains(errOut, "started a private redis-server there") {
		t.Errorf("stderr %q does not say a private server was started", errOut)
	}
	if c, err := net.Dial("tcp", net.JoinHostPort(host, port)); err == nil {
		_ = c.Close()
		t.Errorf("the private server on %s still listens after the run", addr)
	}
}

// Package testutil holds the helpers that the tests of several packages
// share: a log buffer safe for concurrent writers, a manual clock, unique
// names, a closed loopback address, and a Redis client for the shared test
// server that skips (or, in CI, fails) the test when Redis does not answer.
//
// It is imported only by _test.go files; nothing in the service uses it. Its
// files are not _test.go files only so that other packages' tests can import
// it.
package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisAddr is the address of the Redis server the tests share. Each package
// uses its own DB number on it, and unique key prefixes and queue names per
// test; no test flushes it.
const RedisAddr = "127.0.0.1:6379"

// pingTimeout bounds how long Redis waits for the first PING: long enough for
// a loaded machine, short enough that a missing server costs little.
const pingTimeout = 2 * time.Second

// SyncBuffer is a bytes.Buffer safe for concurrent use: loggers and handler
// goroutines may Write while the test reads String. The zero value is an
// empty buffer ready to use; it must not be copied after first use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer; it never fails.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns a copy of everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Clock is a fake clock that moves only when Advance is called, for code
// that takes an injected func() time.Time. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock that reads start until advanced.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's current time; pass the method value c.Now as the
// injected clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d (backward if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// RandomHex returns 2n lowercase hex digits of n random bytes from
// crypto/rand, for names that must not collide across tests and runs.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}

// Unique returns prefix followed by 12 random hex digits (48 random bits):
// a portal, queue or key prefix no other test uses.
func Unique(prefix string) string { return prefix + RandomHex(6) }

// ClosedAddr returns a loopback "host:port" that nobody listens on: it binds
// a free port and closes it at once. Another process could take the port
// in between; tests use it only to provoke connection errors.
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen on a free loopback port: %v", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Redis returns a new go-redis client (its own connection pool, as a separate
// process would have) on database db of RedisAddr, closed on tb.Cleanup.
// opts may change the options (PoolSize, MaxRetries, …) before the client is
// made. It PINGs with a 2 s timeout first: when Redis does not answer the
// test is skipped, unless the environment variable CI is non-empty, where it
// fails instead, so that CI never passes by skipping.
func Redis(tb testing.TB, db int, opts ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	return redisAt(tb, RedisAddr, db, os.Getenv("CI") != "", opts...)
}

// redisAt is Redis on addr, with the CI decision passed in so that it can be
// tested without the environment.
func redisAt(tb testing.TB, addr string, db int, ci bool, opts ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	o := &redis.Options{Addr: addr, DB: db}
	for _, opt := range opts {
		opt(o)
	}
	rdb := redis.NewClient(o)
	tb.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		if !ci {
			tb.Skipf("redis at %s/%d does not answer: %v", addr, db, err)
		}
		tb.Fatalf("redis at %s/%d does not answer (CI is set, so this fails): %v", addr, db, err)
	}
	return rdb
}

// DeleteKeys deletes every key of rdb's database that matches the glob
// pattern, scanning (never KEYS, never FLUSHDB) so that other tests' keys on
// the same database are untouched. Errors are ignored: it is for cleanups,
// where a failure must not hide the test's own result.
func DeleteKeys(rdb redis.Cmdable, pattern string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

// keyNameReplacer makes a test name safe inside a Redis key: no slashes or
// spaces (readability) and no braces, which would open a cluster hash tag
// before the code's own.
var keyNameReplacer = strings.NewReplacer("/", "_", " ", "_", "{", "_", "}", "_")

// KeyPrefix returns a key prefix unique to this test run,
// "b24qtest:<test name>:<12 hex digits>", and deletes the keys under
// "<prefix>:" from rdb on tb.Cleanup. Register it after the client (as
// Redis does) so that the keys are deleted before the client closes.
func KeyPrefix(tb testing.TB, rdb redis.Cmdable) string {
	tb.Helper()
	prefix := fmt.Sprintf("b24qtest:%s:%s", keyNameReplacer.Replace(tb.Name()), RandomHex(6))
	tb.Cleanup(func() { DeleteKeys(rdb, prefix+":*") })
	return prefix
}

// PollInterval is how often Poll and WaitFor ask their condition.
const PollInterval = 20 * time.Millisecond

// Poll asks cond every PollInterval (first at once) until it reports done,
// and returns nil then; after timeout it returns an error with the state
// cond last described. It never sleeps past the moment cond becomes true by
// more than one interval, so tests wait for events, not for fixed times.
func Poll(timeout time.Duration, cond func() (done bool, state string)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		done, state := cond()
		if done {
			return nil
		}
		select {
		case <-deadline.C:
			if done, state = cond(); done {
				return nil
			}
			return fmt.Errorf("not done after %v: %s", timeout, state)
		case <-tick.C:
		}
	}
}

// WaitFor is Poll that fails tb (with what and the last state) on timeout.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() (done bool, state string)) {
	tb.Helper()
	if err := Poll(timeout, cond); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

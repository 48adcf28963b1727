package testutil

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func TestSyncBufferConcurrentWrites(t *testing.T) {
	t.Parallel()
	var buf SyncBuffer
	const writers, lines = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(&buf, "w%d-%d\n", w, i)
				_ = buf.String() // a reader racing the writers
			}
		})
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	seen := map[string]bool{}
	for _, l := range got {
		seen[l] = true
	}
	if len(seen) != writers*lines {
		t.Fatalf("%d distinct lines, want %d: writes interleaved", len(seen), writers*lines)
	}
}

func TestClock(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_700_000_000, 0)
	c := NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("the clock moved without Advance: %v", got)
	}
	c.Advance(1500 * time.Millisecond)
	c.Advance(-500 * time.Millisecond)
	if got, want := c.Now(), start.Add(time.Second); !got.Equal(want) {
		t.Fatalf("Now after Advance = %v, want %v", got, want)
	}
}

func TestUniqueAndRandomHex(t *testing.T) {
	t.Parallel()
	if h := RandomHex(4); !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(h) {
		t.Errorf("RandomHex(4) = %q, want 8 hex digits", h)
	}
	a, b := Unique("api-"), Unique("api-")
	re := regexp.MustCompile(`^api-[0-9a-f]{12}$`)
	if !re.MatchString(a) || !re.MatchString(b) {
		t.Errorf("Unique = %q, %q; want api- and 12 hex digits", a, b)
	}
	if a == b {
		t.Errorf("two Unique calls gave the same %q", a)
	}
}

func TestClosedAddrRefusesConnections(t *testing.T) {
	t.Parallel()
	addr := ClosedAddr(t)
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("ClosedAddr = %q (%v), want a 127.0.0.1 host:port", addr, err)
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("dial %s succeeded; want refused", addr)
	}
}

// fakeTB records Skipf and Fatalf and, like the real ones, ends the
// goroutine; everything else is the real test's.
type fakeTB struct {
	testing.TB
	mu             sync.Mutex
	skipped, fatal string
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// runRedisAt calls redisAt in its own goroutine, as the test runner would,
// so that Skipf and Fatalf can end it.
func runRedisAt(t *testing.T, addr string, db int, ci bool, opts ...func(*redis.Options)) (*redis.Client, *fakeTB) {
	f := &fakeTB{TB: t}
	var rdb *redis.Client
	done := make(chan struct{})
	go func() {
		defer close(done)
		rdb = redisAt(f, addr, db, ci, opts...)
	}()
	<-done
	return rdb, f
}

func TestRedisAtDown(t *testing.T) {
	t.Parallel()
	addr := ClosedAddr(t)
	for _, tt := range []struct {
		name               string
		ci                 bool
		wantSkip, wantFail bool
	}{
		{"local run skips", false, true, false},
		{"CI fails", true, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, f := runRedisAt(t, addr, 7, tt.ci, func(o *redis.Options) { o.MaxRetries = -1 })
			if rdb != nil {
				t.Fatal("redisAt returned a client of a Redis that does not answer")
			}
			if (f.skipped != "") != tt.wantSkip || (f.fatal != "") != tt.wantFail {
				t.Fatalf("skipped %q, failed %q; want skip %v, fail %v", f.skipped, f.fatal, tt.wantSkip, tt.wantFail)
			}
			msg := f.skipped + f.fatal
			if !strings.Contains(msg, addr+"/7 does not answer") {
				t.Errorf("message %q does not name %s/7", msg, addr)
			}
		})
	}
}

func TestRedisAtUp(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	var closed bool
	t.Run("client", func(t *testing.T) {
		var rdb *redis.Client
		// Registered first, so it runs after redisAt's own cleanup.
		t.Cleanup(func() { closed = rdb != nil && rdb.Ping(context.Background()).Err() == redis.ErrClosed })
		rdb, f := runRedisAt(t, mr.Addr(), 2, true, func(o *redis.Options) { o.PoolSize = 3 })
		if rdb == nil || f.skipped != "" || f.fatal != "" {
			t.Fatalf("client %v, skipped %q, failed %q; want a client", rdb, f.skipped, f.fatal)
		}
		if o := rdb.Options(); o.DB != 2 || o.PoolSize != 3 {
			t.Errorf("DB %d, PoolSize %d; want 2, 3 (the option applied)", o.DB, o.PoolSize)
		}
		if err := rdb.Set(context.Background(), "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if got, _ := mr.DB(2).Get("k"); got != "v" {
			t.Errorf("key written to DB 2 reads %q there", got)
		}
	})
	if !closed {
		t.Error("the client was not closed on Cleanup")
	}
}

func TestKeyPrefixDeletesOnlyItsKeys(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	var prefix string
	t.Run("a b/{c}", func(t *testing.T) {
		prefix = KeyPrefix(t, rdb)
		for _, k := range []string{prefix + ":x", prefix + ":{portal}:y", prefix + "z"} {
			if err := rdb.Set(ctx, k, "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := rdb.Set(ctx, "other:x", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
	if re := regexp.MustCompile(`^b24qtest:TestKeyPrefixDeletesOnlyItsKeys_a_b__c_:[0-9a-f]{12}$`); !re.MatchString(prefix) {
		t.Errorf("prefix %q; want the test name without / space { } and 12 hex digits", prefix)
	}
	keys := mr.Keys() // sorted
	want := []string{prefix + "z", "other:x"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys after cleanup %q; want only %q (those outside prefix:)", keys, want)
	}
}

func TestPollReturnsOnceDone(t *testing.T) {
	t.Parallel()
	n := 0
	start := time.Now()
	err := Poll(5*time.Second, func() (bool, string) { n++; return n == 3, fmt.Sprint(n) })
	if err != nil || n != 3 {
		t.Fatalf("Poll = %v after %d calls", err, n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Poll took %v for 3 calls", d)
	}
}

func TestPollTimesOutWithTheLastState(t *testing.T) {
	t.Parallel()
	err := Poll(60*time.Millisecond, func() (bool, string) { return false, "still 7 pending" })
	if err == nil || !strings.Contains(err.Error(), "still 7 pending") {
		t.Fatalf("Poll = %v, want a timeout naming the state", err)
	}
}

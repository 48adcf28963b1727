package tasks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisWithPrefix returns a client on this package's test DB and a key
// prefix of the test's own.
func redisWithPrefix(t *testing.T) (redis.UniversalClient, string) {
	t.Helper()
	rdb := bundleRedis(t)
	t.Cleanup(func() { rdb.Close() })
	return rdb, fmt.Sprintf("t%d", time.Now().UnixNano())
}

func TestAttemptMarkerTellsAnUnexplainedEarlierAttempt(t *testing.T) {
	t.Parallel()
	rdb, prefix := redisWithPrefix(t)
	a := NewAttempts(rdb, prefix)
	ctx := context.Background()

	uncertain, err := a.Begin(ctx, "acme", "task-1")
	if err != nil || uncertain {
		t.Fatalf("first Begin = %v, %v; want false, nil", uncertain, err)
	}
	// The worker dies here; the task runs again.
	uncertain, err = a.Begin(ctx, "acme", "task-1")
	if err != nil || !uncertain {
		t.Fatalf("Begin after an unfinished attempt = %v, %v; want true, nil", uncertain, err)
	}
	ttl := rdb.TTL(ctx, a.key("acme", "task-1")).Val()
	if ttl <= 0 || ttl > DefaultAttemptTTL {
		t.Errorf("marker TTL = %v, want (0, %v]", ttl, DefaultAttemptTTL)
	}
	if err := a.Clear(ctx, "acme", "task-1"); err != nil {
		t.Fatal(err)
	}
	if uncertain, _ := a.Begin(ctx, "acme", "task-1"); uncertain {
		t.Error("Begin after Clear reports an unexplained attempt")
	}
	if uncertain, _ := a.Begin(ctx, "acme", "task-2"); uncertain {
		t.Error("another task sees task-1's marker")
	}
	t.Cleanup(func() { rdb.Del(context.Background(), a.key("acme", "task-1"), a.key("acme", "task-2")) })
}

func TestAttemptMarkerFailsLoudlyWithoutRedis(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	if _, err := NewAttempts(rdb, "x").Begin(context.Background(), "acme", "t"); err == nil {
		t.Fatal("Begin without Redis returned no error: the handler would create without knowing")
	}
}

package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/testutil"
)

// testRedisDB is this package's database on the shared test Redis.
const testRedisDB = 12

func requireRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	return testutil.Redis(t, testRedisDB)
}

// keySpace returns the test Redis and a key prefix of the test's own,
// whose keys are deleted on cleanup.
func keySpace(t *testing.T) (redis.UniversalClient, string) {
	t.Helper()
	rdb := requireRedis(t)
	prefix := testutil.Unique("fleettest")
	t.Cleanup(func() { testutil.DeleteKeys(rdb, prefix+":*") })
	return rdb, prefix
}

func TestTokenStore(t *testing.T) {
	t.Parallel()
	rdb := requireRedis(t)
	prefix := "b24qtest" + testutil.RandomHex(4)
	s := NewTokenStore(rdb, prefix)
	ctx := context.Background()
	t.Cleanup(func() { rdb.Del(context.Background(), s.Key("acme"), s.Key("bad")) })

	if got := s.Key("acme"); got != prefix+":{acme}:oauth" {
		t.Fatalf("Key = %q", got)
	}
	if _, ok, err := s.Load(ctx, "acme"); ok || err != nil {
		t.Fatalf("Load of nothing = ok %t, err %v", ok, err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	for _, tok := range []b24.Token{
		{AccessToken: "a1", RefreshToken: "r1", ExpiresAt: exp},
		{AccessToken: "a2", RefreshToken: "r2", ExpiresAt: exp.Add(time.Hour)}, // the latest Save wins
		{AccessToken: "a3", RefreshToken: "r3"},                                // unknown expiry
	} {
		if err := s.Save(ctx, "acme", tok); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Load(ctx, "acme")
		if err != nil || !ok || got.AccessToken != tok.AccessToken || got.RefreshToken != tok.RefreshToken || !got.ExpiresAt.Equal(tok.ExpiresAt) {
			t.Fatalf("Load = %+v %t %v, want %+v", got, ok, err, tok)
		}
	}
	ttl, err := rdb.TTL(ctx, s.Key("acme")).Result()
	if err != nil || ttl < TokenTTL-time.Minute || ttl > TokenTTL {
		t.Fatalf("TTL = %s (%v), want about %s", ttl, err, TokenTTL)
	}

	rdb.Set(ctx, s.Key("bad"), "not-json-secretvalue", time.Minute)
	_, _, err = s.Load(ctx, "bad")
	if err == nil || strings.Contains(err.Error(), "secretvalue") {
		t.Fatalf("Load of garbage: %v, want an error without the value", err)
	}

	dead := NewTokenStore(redis.NewClient(&redis.Options{Addr: testutil.ClosedAddr(t), MaxRetries: -1}), prefix)
	if err := dead.Save(ctx, "acme", b24.Token{AccessToken: "secret-access", RefreshToken: "secret-refresh"}); err == nil ||
		strings.Contains(err.Error(), "secret-") {
		t.Fatalf("Save to a dead Redis: %v", err)
	}
}

// TestTokenStoreKeepsRefusal: a pair whose refresh token the OAuth server
// refused is stored marked, so that no worker asks with it again; the next
// pair saved has no mark.
func TestTokenStoreKeepsRefusal(t *testing.T) {
	t.Parallel()
	rdb := requireRedis(t)
	s := NewTokenStore(rdb, "b24qtest"+testutil.RandomHex(4))
	ctx := context.Background()
	t.Cleanup(func() { rdb.Del(context.Background(), s.Key("refused")) })

	refused := b24.Token{AccessToken: "a1", RefreshToken: "r1", ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Second).UTC(),
		RefusedCode: b24.CodeInvalidGrant, RefusedDescription: "The refresh token is invalid."}
	fresh := b24.Token{AccessToken: "a2", RefreshToken: "r2"}
	for _, tok := range []b24.Token{refused, fresh} {
		if err := s.Save(ctx, "refused", tok); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.Load(ctx, "refused")
		if err != nil || !ok || got.RefreshToken != tok.RefreshToken || !got.ExpiresAt.Equal(tok.ExpiresAt) ||
			got.RefusedCode != tok.RefusedCode || got.RefusedDescription != tok.RefusedDescription {
			t.Fatalf("Load = %v %+v %t %v, want %v", got, got.RefusedDescription, ok, err, tok)
		}
	}
}

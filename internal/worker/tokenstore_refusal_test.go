package worker

import (
	"context"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/testutil"
)

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

package fleet

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/config"
)

// A worker reads only what changed since the revision it knows: new
// registrations with their revision, removals as 0; a registration's
// secret is in the token store only, and gone after removal.
func TestRegistryChanges(t *testing.T) {
	t.Parallel()
	rdb, prefix := keySpace(t)
	reg := NewRegistry(rdb, prefix)
	ctx := context.Background()
	add := func(name string) Record {
		t.Helper()
		p, err := config.ParsePortal(name, []byte(`{"webhook_url": "https://`+name+`.bitrix24.ru/rest/1/regsecret`+name+`/"}`), config.Limits{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rec, _, err := reg.Add(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	a, b := add("alpha"), add("beta")
	got, seen, err := reg.Changes(ctx, 0)
	if want := map[string]int64{"alpha": a.Revision, "beta": b.Revision}; err != nil || !maps.Equal(got, want) || seen != b.Revision {
		t.Fatalf("Changes(0) = %v, %d, %v; want %v, %d", got, seen, err, want, b.Revision)
	}
	if got, again, _ := reg.Changes(ctx, seen); len(got) != 0 || again != seen {
		t.Errorf("Changes(%d) with nothing new = %v, %d", seen, got, again)
	}
	if err := reg.Remove(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	got, seen2, _ := reg.Changes(ctx, seen)
	if !maps.Equal(got, map[string]int64{"alpha": 0}) || seen2 <= seen {
		t.Errorf("after a removal: %v, %d", got, seen2)
	}
	a2 := add("alpha")
	if got, _, _ := reg.Changes(ctx, seen2); !maps.Equal(got, map[string]int64{"alpha": a2.Revision}) {
		t.Errorf("after registering again: %v", got)
	}
	p, rec, err := reg.Load(ctx, "beta")
	if err != nil || p.WebhookURL != "https://beta.bitrix24.ru/rest/1/regsecretbeta/" || rec.Host != "beta.bitrix24.ru" || rec.Auth != AuthWebhook {
		t.Errorf("Load(beta) = %+v %+v %v", p, rec, err)
	}
	if err := reg.Remove(ctx, "beta"); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, reg.Tokens().CredentialKey("beta")).Result(); n != 0 {
		t.Error("the removed portal's credential is still stored")
	}
	if _, _, err := reg.Load(ctx, "beta"); err == nil {
		t.Error("Load of a removed portal succeeded")
	}
}

// Registrations made at once by many producers are each seen by a worker
// that follows the changes from the revision it knows: none is skipped,
// whatever order their writes land in.
func TestRegistryChangesMissNothingUnderConcurrency(t *testing.T) {
	t.Parallel()
	rdb, prefix := keySpace(t)
	reg := NewRegistry(rdb, prefix)
	ctx := context.Background()
	const n = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					p, err := config.ParsePortal(fmt.Sprintf("p%03d", i), []byte(`{"webhook_url": "https://x.bitrix24.ru/rest/1/code/"}`), config.Limits{}, nil)
					if err == nil {
						_, _, err = reg.Add(ctx, p)
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}()
	seen := map[string]bool{}
	var since int64
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		got, next, err := reg.Changes(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		for name := range got {
			seen[name] = true
		}
		since = next
	}
	got, _, _ := reg.Changes(ctx, since) // the last ones, after the writers ended
	for name := range got {
		seen[name] = true
	}
	if len(seen) != n {
		t.Errorf("a worker following the changes saw %d of %d registrations", len(seen), n)
	}
}

// Serves says yes for a portal of the caller, a registered one and one of
// a live worker's configuration, and no otherwise.
func TestServes(t *testing.T) {
	t.Parallel()
	rdb, prefix := keySpace(t)
	ctx := context.Background()
	p, err := config.ParsePortal("reg", []byte(`{"webhook_url": "https://x.bitrix24.ru/rest/1/code/"}`), config.Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewRegistry(rdb, prefix).Add(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := NewMembers(rdb, prefix).Beat(ctx, Member{ID: "w1", Expires: time.Now().Add(time.Minute), Portals: []string{"cfg"}}); err != nil {
		t.Fatal(err)
	}
	serves := Serves(rdb, prefix, "own")
	for portal, want := range map[string]bool{"own": true, "reg": true, "cfg": true, "nobody": false} {
		if got, err := serves(ctx, portal); err != nil || got != want {
			t.Errorf("Serves(%s) = %t, %v; want %t", portal, got, err, want)
		}
	}
}

//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/internal/claim"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/fleet"
	"github.com/b24queue/b24queue/internal/keys"
	"github.com/b24queue/b24queue/limiter"
)

// TestScaleCluster runs against a local 3-master Redis Cluster: every Redis
// operation of our own packages (limiter scripts, import state scripts and
// transaction, object claims, token store) on portals and imports whose
// hash slots live on different masters — a script whose keys were in two
// slots would fail with CROSSSLOT — and a 200-department import end to end
// through worker and enqueue processes configured with REDIS_CLUSTER_ADDRS.
func TestScaleCluster(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	addrs := clusterAddrs(nodes)

	t.Run("packages", func(t *testing.T) {
		t.Parallel()
		scaleClusterPackages(t, addrs)
	})
	t.Run("import", func(t *testing.T) {
		t.Parallel()
		scaleClusterImport(t, addrs)
	})
}

// scaleClusterPackages drives limiter, store.Store, object claims and
// worker.TokenStore through a cluster client made by the config package.
func scaleClusterPackages(t *testing.T, addrs string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := config.LoadEnqueueEnv(func(k string) string {
		if k == "REDIS_CLUSTER_ADDRS" {
			return addrs
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := cfg.Redis.UniversalClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("REDIS_CLUSTER_ADDRS gave a %T, want *redis.ClusterClient", rdb)
	}

	// Names whose hash slots are spread over at least two masters, so a
	// cross-slot script could not pass by luck of all keys on one node.
	const prefix = "b24qscale"
	var portals []string
	masters := map[string]bool{}
	for i := 0; len(portals) < 6; i++ {
		p := fmt.Sprintf("portal-%d", i)
		m, err := cc.MasterForKey(ctx, prefix+":{"+p+"}:bucket")
		if err != nil {
			t.Fatalf("master for %s: %v", p, err)
		}
		masters[m.Options().Addr] = true
		portals = append(portals, p)
	}
	if len(masters) < 2 {
		t.Fatalf("portals %v all hash to one master; pick other names", portals)
	}

	for _, portal := range portals {
		t.Run("limiter/"+portal, func(t *testing.T) {
			lim := limiter.New(rdb, limiter.Config{Rate: 50, Burst: 5}, limiter.WithPrefix(prefix))
			if c, ok := any(lim).(io.Closer); ok { // the pause subscription, where present
				t.Cleanup(func() { _ = c.Close() })
			}
			const method = "department.add"
			for range 3 {
				if err := lim.Wait(ctx, portal, method); err != nil {
					t.Fatalf("Wait: %v", err)
				}
			}
			if err := lim.Throttled(ctx, portal); err != nil {
				t.Fatalf("Throttled: %v", err)
			}
			if r, err := lim.Rate(ctx, portal); err != nil || r >= 50 {
				t.Fatalf("Rate after a 503 = %v, %v; want < 50", r, err)
			}
			reset := time.Now().Add(time.Minute)
			if err := lim.Observe(ctx, portal, method, 479*time.Second, reset); err != nil {
				t.Fatalf("Observe: %v", err)
			}
			until, blocked, err := lim.Blocked(ctx, portal, method)
			if err != nil || !blocked || until.Before(reset.Add(-time.Second)) {
				t.Fatalf("Blocked = %v, %v, %v; want blocked until about %v", until, blocked, err, reset)
			}
			var be *limiter.BlockedError
			if err := lim.Wait(ctx, portal, method); !errors.As(err, &be) {
				t.Fatalf("Wait on a blocked method = %v, want *limiter.BlockedError", err)
			}
			if err := lim.Block(ctx, portal, "crm.automatedsolution.add", time.Now().Add(time.Minute)); err != nil {
				t.Fatalf("Block: %v", err)
			}
		})
	}

	t.Run("import state", func(t *testing.T) {
		imports := store.New(rdb, prefix)
		one := int64(1)
		f := &importer.File{
			Departments: []importer.Department{
				{Key: "root", Name: "Root", ParentID: &one},
				{Key: "a", Name: "A", Parent: "root"},
				{Key: "a1", Name: "A1", Parent: "a"},
				{Key: "b", Name: "B", Parent: "root"},
			},
			Workplaces: []importer.Workplace{{Key: "w", Title: "W"}},
		}
		for i := range 4 { // several IDs: their slots differ
			id := fmt.Sprintf("imp-%d", i)
			if existing, err := imports.Create(ctx, id, portals[0], "digest", f); err != nil || existing {
				t.Fatalf("Create %s = %v, %v", id, existing, err)
			}
			if existing, err := imports.Create(ctx, id, portals[0], "digest", f); err != nil || !existing {
				t.Fatalf("second Create %s = %v, %v; want existing", id, existing, err)
			}
			rel, err := imports.Releasable(ctx, id)
			if err != nil || len(rel) != 2 {
				t.Fatalf("Releasable = %v, %v; want root and w", rel, err)
			}
			kids, err := imports.Complete(ctx, id, "root", 10)
			if err != nil || len(kids) != 2 {
				t.Fatalf("Complete root = %v, %v; want a and b", kids, err)
			}
			if n, err := imports.MarkQueued(ctx, id, "a", "b"); err != nil || n != 2 {
				t.Fatalf("MarkQueued = %d, %v", n, err)
			}
			if got, ok, err := imports.Existing(ctx, id, "root"); err != nil || !ok || got != 10 {
				t.Fatalf("Existing root = %d, %v, %v", got, ok, err)
			}
			if n, err := imports.Fail(ctx, id, "a", "boom"); err != nil || n != 2 {
				t.Fatalf("Fail a = %d, %v; want a and a1", n, err)
			}
			if reset, err := imports.ResetFailed(ctx, id); err != nil || len(reset) != 2 {
				t.Fatalf("ResetFailed = %v, %v", reset, err)
			}
			st, err := imports.Status(ctx, id)
			if err != nil || st.Counts.Created != 1 || st.Counts.Total != 5 {
				t.Fatalf("Status = %+v, %v", st, err)
			}
			if err := imports.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			if _, err := imports.Status(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Status after Delete = %v, want ErrNotFound", err)
			}
		}
	})

	t.Run("claims and tokens", func(t *testing.T) {
		space := keys.New(prefix)
		tok := fleet.NewTokenStore(rdb, prefix)
		for _, portal := range portals {
			first := claim.Claim{Key: space.Object(portal, "d", "1\x00sales"), Owner: "task-1", Token: "run-1"}
			again := first
			again.Token = "run-2"
			if got, err := claim.Take(ctx, rdb, time.Minute, []claim.Claim{first}); err != nil || got[0].State != claim.Fresh {
				t.Fatalf("Take = %v, %v", got, err)
			}
			if got, err := claim.Take(ctx, rdb, time.Minute, []claim.Claim{again}); err != nil || got[0].State != claim.Resumed {
				t.Fatalf("second Take = %v, %v; want resumed", got, err)
			}
			if bad, err := claim.Check(ctx, rdb, time.Minute, []claim.Claim{first, again}); err != nil || len(bad) != 1 || bad[0] != 0 {
				t.Fatalf("Check = %v, %v; want the first run superseded", bad, err)
			}
			if err := claim.Settle(ctx, rdb, time.Minute, []claim.Settlement{{Claim: again, Outcome: claim.Free}}); err != nil {
				t.Fatal(err)
			}
			want := b24.Token{AccessToken: "a-" + portal, RefreshToken: "r-" + portal}
			if err := tok.Save(ctx, portal, want); err != nil {
				t.Fatal(err)
			}
			if got, ok, err := tok.Load(ctx, portal); err != nil || !ok || got.AccessToken != want.AccessToken {
				t.Fatalf("Load = %v, %v, %v", got.AccessToken, ok, err)
			}
		}
	})
}

// scaleClusterImport imports 200 departments with two worker processes and
// the enqueue command, all on REDIS_CLUSTER_ADDRS, and checks each exists
// exactly once and the import status (read back through the cluster) agrees.
func scaleClusterImport(t *testing.T, addrs string) {
	s := startSim(t, "--rate", "50", "--burst", "50")
	redisEnv := map[string]string{"REDIS_CLUSTER_ADDRS": addrs}
	env := scaleWorkerEnv(s, redisEnv, nil)
	w1 := startWorker(t, env)
	w2 := startWorker(t, env)
	waitProcessing(t, w1, 15*time.Second)
	waitProcessing(t, w2, 15*time.Second)
	tr := genTree(t, 200, 4)
	id := scaleSubmit(t, redisEnv, tr.Path)
	st := scaleWaitDone(t, redisEnv, id, 60*time.Second)
	ids := checkImported(t, s, tr, 0)
	checkStatus(t, st, ids)
	for _, w := range []*proc{w1, w2} {
		if strings.Contains(w.Stderr(), "CROSSSLOT") || strings.Contains(w.Stderr(), "MOVED") {
			t.Errorf("worker log mentions a cluster routing error:\n%s", tail(w.Stderr(), 2000))
		}
	}
}

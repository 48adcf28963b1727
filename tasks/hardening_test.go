package tasks

// Attacks on "nothing created twice" (issue "Exactly once and no leaks,
// hardened"): corrupt, null, held or duplicated answers, names the batch
// would rewrite, two imports of the same department at once, a run that
// outlived its lease. Each test fails against a client that trusts what it
// is told.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/importer"
	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/internal/claim"
	"github.com/b24queue/b24queue/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// A name holding "$result[c0]" would be rewritten by the portal's batch
// ("Team 2"), never found by a lookup, and created again: such items go by
// plain call, under their own name, once.
func TestBatchReferenceInANameIsNeverSubstituted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	f := &importer.File{}
	for i := range 5 {
		f.Departments = append(f.Departments, importer.Department{Key: fmt.Sprintf("t%d", i), Name: fmt.Sprintf("Team $result[c%d]", i), ParentID: pid(1)})
	}
	for i := range 20 {
		f.Departments = append(f.Departments, importer.Department{Key: fmt.Sprintf("p%d", i), Name: fmt.Sprintf("Plain %d", i), ParentID: pid(1)})
	}
	f.Workplaces = []importer.Workplace{{Key: "w", Title: "Board $result[c1][ID]"}, {Key: "w2", Title: "Hiring"}}
	st := batchImport(t, bs, f, time.Minute)
	if st.Counts.Failed != 0 {
		t.Fatalf("failed %v", st.Failed)
	}
	checkSimulator(t, b, f, st)
	for _, w := range b.sim.Workplaces() {
		if w.ID == st.Created["w"] && w.Title != "Board $result[c1][ID]" {
			t.Errorf("workplace created as %q", w.Title)
		}
	}
}

// A batch whose create commands answer 7.5, or the same ID for every
// command, must not put the items (and their children) under a wrong or a
// shared ID: they are looked up and adopted under their real IDs.
func TestCorruptIDsInBatchAnswersAreNeverRecorded(t *testing.T) {
	t.Parallel()
	for _, fault := range []b24test.Faults{{FloatIDRate: 0.5}, {DuplicateIDRate: 0.5}} {
		t.Run(fmt.Sprintf("%+v", fault), func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *setupConfig) { c.sim.Faults = fault; c.sim.Seed = 3 })
			bs := withBatch(t, b)
			bs.startBatch(t, BatchServerConfig(true), 1)
			f := treeFile([]int{2, 30, 60}, 0)
			st := batchImport(t, bs, f, time.Minute)
			if st.Counts.Failed != 0 {
				t.Fatalf("failed %v", st.Failed)
			}
			checkSimulator(t, b, f, st)
			seen := map[int64]string{}
			for k, id := range st.Created {
				if other, dup := seen[id]; dup {
					t.Errorf("%s and %s share ID %d", k, other, id)
				}
				seen[id] = k
			}
			if n := b.sim.Stats().Faults["float_id"] + b.sim.Stats().Faults["duplicate_ids"]; n == 0 {
				t.Error("no corrupt answer was sent: the test proves nothing")
			}
		})
	}
}

// A lookup answered null (or with no result) says nothing: it is retried,
// never taken for "not found", so nothing is created a second time.
func TestNullLookupIsNeverNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *setupConfig) {
		c.sim.Seed = 11
		c.sim.Faults = b24test.Faults{LostResponseRate: 0.2, NullResultRate: 0.3, MissingResultRate: 0.2}
	})
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 2)
	f := treeFile([]int{1, 20, 60}, 5)
	st := batchImport(t, bs, f, 2*time.Minute)
	if st.Counts.Failed != 0 {
		t.Fatalf("failed %v", st.Failed)
	}
	checkSimulator(t, b, f, st)
	s := b.sim.Stats()
	if s.Faults["null_result"]+s.Faults["missing_result"] == 0 || s.Calls["department.get"]["ok"] == 0 {
		t.Errorf("no lookup met a null answer (faults %v): the test proves nothing", s.Faults)
	}
}

// A create the portal holds before running it (and runs after the worker
// gave up waiting) is not created again: the retry looks up only once the
// held request can no longer be running.
func TestCreateRunAfterTheClientGaveUpIsAdopted(t *testing.T) {
	t.Parallel()
	const hold, timeout = 1500 * time.Millisecond, 500 * time.Millisecond
	f := startFleet(t, fleetConfig{
		sim:         b24test.Config{Rate: 50, Burst: 50, Seed: 5, Faults: b24test.Faults{HoldRate: 0.5, HoldDelay: hold}},
		limits:      limiterConfig50(),
		servers:     2,
		concurrency: 4,
		timeout:     timeout,
		// The held request runs up to HoldDelay after it was sent: the
		// worker's request cap must cover it (the portal's own is 60 s).
		claims: []ClaimsOption{WithRequestCap(hold + time.Second)},
	})
	var ids []string
	for i := range 12 {
		ids = append(ids, f.department(t, fmt.Sprintf("Held %02d", i), 1))
	}
	f.drain(t, len(ids), 90*time.Second)
	s := f.sim.Stats()
	if s.DepartmentsCreated != len(ids) || s.DuplicateDepartments != 0 {
		t.Fatalf("created %d (duplicates %d), want %d once each", s.DepartmentsCreated, s.DuplicateDepartments, len(ids))
	}
	if s.Held == 0 {
		t.Error("no request was held: the test proves nothing")
	}
}

// Two imports that share departments, submitted together, and the same
// file under two IDs, with lost answers: every department exactly once,
// and every import maps its keys to the one ID.
func TestConcurrentImportsOfTheSameDepartments(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *setupConfig) { c.sim.Seed = 9; c.sim.Faults.LostResponseRate = 0.1 })
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 2)
	shared := treeFile([]int{1, 10, 40}, 3)
	other := treeFile([]int{1, 10, 40}, 3) // the same names: the same departments
	other.Departments = append(other.Departments, importer.Department{Key: "extra", Name: "Only in the second", Parent: "d0"})
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([]SubmitResult, 3)
	errs := make([]error, 3)
	for i, sub := range []struct {
		id string
		f  *importer.File
	}{{"", shared}, {"twin", shared}, {"", other}} {
		wg.Go(func() { results[i], errs[i] = bs.bimports.Submit(ctx, b.portal, sub.id, sub.f) })
	}
	wg.Wait()
	var sts []store.Status
	for i, r := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		sts = append(sts, bs.waitBatchDone(t, r.ID, 2*time.Minute))
	}
	all := b.sim.Departments()
	if s := b.sim.Stats(); s.DuplicateDepartments != 0 || len(all) != len(other.Departments)+1 {
		t.Fatalf("%d departments (%d duplicates), want %d", len(all), s.DuplicateDepartments, len(other.Departments)+1)
	}
	for _, d := range shared.Departments {
		for i, st := range sts {
			if st.Created[d.Key] != sts[0].Created[d.Key] || st.Created[d.Key] == 0 {
				t.Errorf("%s: import %d maps it to %d, import 0 to %d", d.Key, i, st.Created[d.Key], sts[0].Created[d.Key])
			}
		}
	}
}

// A run that outlived its lease (its process paused) must not send the
// create of items another run has taken over: the grant checks the claims
// in the same step (fencing).
func TestSupersededBatchRunSendsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bs := withBatch(t, b)
	ctx := context.Background()
	f := treeFile([]int{3}, 0)
	run := &batchRun{h: bs.bhandler, portal: b.b24portal, owner: "paused-run", token: claim.NewToken()}
	var items []*batchItem
	for i, d := range f.Departments {
		p := DepartmentPayload{Portal: b.portal, Name: d.Name, Parent: 1}
		items = append(items, &batchItem{BatchItem: BatchItem{TaskID: fmt.Sprintf("item-%d", i), Type: TypeDepartmentCreate}, method: methodDepartmentAdd, dept: p})
	}
	create, _, err := run.claimObjects(ctx, items, false)
	if err != nil || len(create) != 3 {
		t.Fatalf("claimObjects = %d items, %v", len(create), err)
	}
	// Its lease expired while it was paused: another run of items 0 and 2
	// took them over.
	for _, it := range []*batchItem{create[0], create[2]} {
		c := it.claim
		c.Token = "the-other-run"
		if _, err := bs.bhandler.claims.take(ctx, []claim.Claim{c}); err != nil {
			t.Fatal(err)
		}
	}
	if err := run.sendAll(ctx, create, false); err != nil {
		t.Fatal(err)
	}
	s := b.sim.Stats()
	if s.DepartmentsCreated != 1 || run.res.Skipped != 2 {
		t.Fatalf("created %d, skipped %d; want only the item still this run's (1) and 2 skipped", s.DepartmentsCreated, run.res.Skipped)
	}
	if d := b.sim.Departments(); d[len(d)-1].Name != f.Departments[1].Name {
		t.Errorf("created %q, want %q", d[len(d)-1].Name, f.Departments[1].Name)
	}
}

// The portal's batch echoing the webhook URL (with its secret) in a
// command's error description: the description is redacted before it is
// kept anywhere (task error, import status).
func TestSecretInABatchErrorIsRedacted(t *testing.T) {
	t.Parallel()
	logs := &testutil.SyncBuffer{}
	b := setup(t, func(c *setupConfig) { c.sim.Seed = 4; c.sim.Faults.EchoURLRate = 0.3; c.logs = logs })
	bs := withBatch(t, b)
	bs.startBatch(t, BatchServerConfig(true), 1)
	f := treeFile([]int{1, 20, 40}, 0)
	ctx := context.Background()
	res, err := bs.bimports.Submit(ctx, b.portal, "", f)
	if err != nil {
		t.Fatal(err)
	}
	secret := b.sim.Config().WebhookSecret
	st := bs.waitBatchDone(t, res.ID, 2*time.Minute)
	for k, reason := range st.Failed {
		if strings.Contains(reason, secret) {
			t.Errorf("%s: the failure reason holds the webhook secret: %q", k, reason)
		}
	}
	if b.sim.Stats().Faults["echo_url"] == 0 {
		t.Error("no answer echoed the URL: the test proves nothing")
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("the logs hold the webhook secret")
	}
	if !strings.Contains(logs.String(), "***") {
		t.Error("no redacted description was logged: the test proves nothing")
	}
	for _, pattern := range []string{b.prefix + ":*", "asynq:{" + b.queue + "}:*"} {
		keys, _ := b.rdb.Keys(ctx, pattern).Result()
		for _, k := range keys {
			if v := redisValue(ctx, b.rdb, k); strings.Contains(v, secret) || strings.Contains(k, secret) {
				t.Errorf("Redis key %s holds the webhook secret", k)
			}
		}
	}
}

// redisValue returns everything key holds as one string, by its type.
func redisValue(ctx context.Context, rdb *redis.Client, key string) string {
	switch rdb.Type(ctx, key).Val() {
	case "string":
		return rdb.Get(ctx, key).Val()
	case "hash":
		return fmt.Sprint(rdb.HGetAll(ctx, key).Val())
	case "list":
		return fmt.Sprint(rdb.LRange(ctx, key, 0, -1).Val())
	case "set":
		return fmt.Sprint(rdb.SMembers(ctx, key).Val())
	case "zset":
		return fmt.Sprint(rdb.ZRange(ctx, key, 0, -1).Val())
	}
	return ""
}

package fleet

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/b24queue/b24queue/limiter"
	"github.com/b24queue/b24queue/tasks"
)

// Status of one portal tells what List tells of it: the source, whether it
// has work (and which live workers run it then) and why it is unavailable;
// an unknown name is ErrUnknownPortal.
func TestAdminStatusMatchesList(t *testing.T) {
	t.Parallel()
	rdb, prefix := keySpace(t)
	ctx := context.Background()
	admin := NewAdmin(rdb, prefix, 1, nil)
	if _, created, err := admin.Register(ctx, "reg", []byte(`{"webhook_url": "https://x.bitrix24.ru/rest/1/code/"}`)); err != nil || !created {
		t.Fatalf("Register = %t, %v", created, err)
	}
	if err := NewMembers(rdb, prefix).Beat(ctx, Member{ID: "w1", Expires: time.Now().Add(time.Minute), Portals: []string{"cfg"}}); err != nil {
		t.Fatal(err)
	}
	status := func(name string) PortalStatus {
		t.Helper()
		st, err := admin.Status(ctx, name)
		if err != nil {
			t.Fatalf("Status(%s): %v", name, err)
		}
		list, err := admin.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(list, func(s PortalStatus) bool { return s.Name == name })
		if i < 0 || list[i].Active != st.Active || list[i].Available != st.Available || !slices.Equal(list[i].Owners, st.Owners) {
			t.Errorf("Status(%s) = %+v, but List says %+v", name, st, list[i])
		}
		return st
	}
	// A registration marks the portal active (a worker looks at its queue
	// at once); a worker finding the queue empty settles it.
	activity := tasks.NewActivity(rdb, prefix)
	if idle, err := activity.Settle(ctx, "reg"); err != nil || !idle {
		t.Fatalf("Settle = %t, %v", idle, err)
	}
	if st := status("reg"); st.Source != SourceRegistered || st.Active || len(st.Owners) != 0 || !st.Available || st.Record == nil {
		t.Errorf("idle registered portal: %+v", st)
	}
	if err := activity.Mark(ctx, "reg"); err != nil {
		t.Fatal(err)
	}
	lim := limiter.New(rdb, limiter.Config{Rate: 2, Burst: 2}, limiter.WithPrefix(prefix))
	if _, err := lim.MarkUnavailable(ctx, "cfg", "department.add", "INVALID_CREDENTIALS", "revoked"); err != nil {
		t.Fatal(err)
	}
	if st := status("reg"); !st.Active || !slices.Equal(st.Owners, []string{"w1"}) {
		t.Errorf("active registered portal: %+v, want active, run by w1", st)
	}
	st := status("cfg")
	if st.Source != SourceConfig || st.Active || st.Available || st.Unavailable == nil || st.Unavailable.Code != "INVALID_CREDENTIALS" || st.Unavailable.Fix == "" {
		t.Errorf("unavailable configured portal: %+v", st)
	}
	if _, err := admin.Status(ctx, "nobody"); !errors.Is(err, ErrUnknownPortal) {
		t.Errorf("Status(nobody) = %v, want ErrUnknownPortal", err)
	}
}

package fleet

import (
	"context"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/internal/keys"
	"github.com/b24queue/b24queue/tasks"
)

// Known returns the portals the fleet serves: those of every live worker's
// configuration and every registered one, sorted; empty when no worker is
// alive and nothing is registered (then nobody can tell). It is what
// producers check a portal name against (tasks.WithKnownPortals). own are
// portals the caller serves itself (a worker's API: its own portals count
// before its first heartbeat).
func Known(rdb redis.UniversalClient, prefix string, own ...string) func(context.Context) ([]string, error) {
	members, reg := NewMembers(rdb, prefix), NewRegistry(rdb, prefix)
	return func(ctx context.Context) ([]string, error) {
		live, err := members.Live(ctx, time.Now())
		if err != nil {
			return nil, err
		}
		names, err := reg.Names(ctx)
		if err != nil {
			return nil, err
		}
		if len(live) == 0 && len(own) == 0 {
			// Registered portals wait for a worker like any other:
			// nobody serves anything now.
			return nil, nil
		}
		names = append(names, own...)
		for _, m := range live {
			names = append(names, m.Portals...)
		}
		slices.Sort(names)
		return slices.Compact(names), nil
	}
}

// Serves is the quick question behind Known for one portal
// (tasks.WithServesPortal): one of own, registered (HEXISTS), or one of a
// live worker's own portals. It never lists the registry.
func Serves(rdb redis.UniversalClient, prefix string, own ...string) tasks.ServesPortal {
	members, key := NewMembers(rdb, prefix), keys.New(prefix).Portals()
	return func(ctx context.Context, portal string) (bool, error) {
		if slices.Contains(own, portal) {
			return true, nil
		}
		if ok, err := rdb.HExists(ctx, key, portal).Result(); err != nil || ok {
			return ok, err
		}
		live, err := members.Live(ctx, time.Now())
		if err != nil {
			return false, err
		}
		for _, m := range live {
			if m.Configured(portal) {
				return true, nil
			}
		}
		return false, nil
	}
}

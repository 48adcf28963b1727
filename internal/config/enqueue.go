package config

import (
	"strings"

	"github.com/b24queue/b24queue/tasks"
)

// Enqueue is the configuration the enqueue command takes from the
// environment; its subcommands parse their own flags.
type Enqueue struct {
	// Redis is where tasks are enqueued (REDIS_URL, default
	// redis://127.0.0.1:6379/0; REDIS_CLUSTER_ADDRS wins when set).
	Redis Redis
	// Portal is the portal tasks name when --portal is not given
	// (B24_PORTAL, default tasks.DefaultPortal); it matches
	// tasks.PortalNamePattern.
	Portal string
}

// String describes the configuration without the Redis password.
func (e Enqueue) String() string { return "redis " + e.Redis.String() + "; portal " + e.Portal }

// LoadEnqueueEnv reads REDIS_URL, REDIS_CLUSTER_ADDRS and B24_PORTAL through
// getenv (empty counts as unset) and validates them. Problems come back as
// one *UsageError.
func LoadEnqueueEnv(getenv func(string) string) (Enqueue, error) {
	p := &problems{}
	e := Enqueue{
		Redis: Redis{
			URL:          strings.TrimSpace(getenv("REDIS_URL")),
			ClusterAddrs: splitAddrs(getenv("REDIS_CLUSTER_ADDRS")),
		},
		Portal: strings.TrimSpace(getenv("B24_PORTAL")),
	}
	if e.Redis.URL == "" {
		e.Redis.URL = DefaultRedisURL
	}
	if e.Portal == "" {
		e.Portal = tasks.DefaultPortal
	}
	validateRedis(e.Redis, "REDIS_URL", p)
	if !tasks.ValidPortalName(e.Portal) {
		p.addf("B24_PORTAL %q: must match %s", e.Portal, tasks.PortalNamePattern)
	}
	if err := p.err(); err != nil {
		return Enqueue{}, err
	}
	return e, nil
}

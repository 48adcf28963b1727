package config

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestUniversalClientFailoverRetries checks that the Sentinel and Cluster
// clients carry the failover retry budget and the connection's credentials,
// and that a single node keeps go-redis's defaults.
func TestUniversalClientFailoverRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		r           Redis
		wantRetries int // MaxRetries (single, failover) or MaxRedirects (cluster)
	}{
		{"single", Redis{URL: "redis://127.0.0.1:6379/0"}, 3},
		{"sentinel", Redis{URL: "redis-sentinel://:" + redisPass + "@s1:26379,s2:26379?master=mymaster"}, FailoverMaxRetries},
		{"cluster", Redis{ClusterAddrs: []string{"c1:7000", "c2:7001"}}, FailoverMaxRetries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := tc.r.UniversalClient()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			switch cl := c.(type) {
			case *redis.ClusterClient:
				o := cl.Options()
				if o.MaxRedirects != tc.wantRetries || o.MinRetryBackoff != FailoverMinRetryBackoff || o.MaxRetryBackoff != FailoverMaxRetryBackoff {
					t.Errorf("cluster MaxRedirects %d backoff %v..%v, want %d %v..%v", o.MaxRedirects, o.MinRetryBackoff, o.MaxRetryBackoff,
						tc.wantRetries, FailoverMinRetryBackoff, FailoverMaxRetryBackoff)
				}
				if len(o.Addrs) != 2 || o.Addrs[0] != "c1:7000" {
					t.Errorf("cluster Addrs = %v", o.Addrs)
				}
			case *redis.Client:
				o := cl.Options()
				if o.MaxRetries != tc.wantRetries {
					t.Errorf("MaxRetries = %d, want %d", o.MaxRetries, tc.wantRetries)
				}
			default:
				t.Fatalf("UniversalClient() is %T", c)
			}
		})
	}
}

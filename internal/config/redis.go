package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// DefaultRedisURL is REDIS_URL's default.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// Redis says how to reach Redis. After validation exactly one form is in
// use: ClusterAddrs when non-empty, otherwise URL.
type Redis struct {
	// URL is any URI asynq.ParseRedisURI accepts: redis://[user:pass@]host:port/DB,
	// rediss:// (TLS), redis-socket://[:pass@]/path?db=N and
	// redis-sentinel://[:pass@]host1:port,host2:port?master=NAME
	// (REDIS_URL, --redis-url, default redis://127.0.0.1:6379/0). May hold a
	// password: print it with RedactURL.
	URL string
	// ClusterAddrs are the seed nodes of a Redis Cluster, host:port each
	// (REDIS_CLUSTER_ADDRS, comma separated, no flag, default none). When set
	// it wins over URL.
	ClusterAddrs []string
}

// String describes the connection without the password.
func (r Redis) String() string {
	if len(r.ClusterAddrs) > 0 {
		return "redis cluster " + strings.Join(r.ClusterAddrs, ",")
	}
	return RedactURL(r.URL)
}

// ConnOpt returns asynq's connection options: asynq.RedisClusterClientOpt
// for ClusterAddrs, otherwise asynq.ParseRedisURI(URL) (plus the ACL user
// name of a redis:// URL, which asynq drops). An empty URL means
// DefaultRedisURL. Errors never contain the password.
func (r Redis) ConnOpt() (asynq.RedisConnOpt, error) {
	if len(r.ClusterAddrs) > 0 {
		for _, a := range r.ClusterAddrs {
			if reason := checkHostPort(a); reason != "" {
				return nil, fmt.Errorf("redis cluster address %q: %s", a, reason)
			}
		}
		return asynq.RedisClusterClientOpt{Addrs: append([]string(nil), r.ClusterAddrs...)}, nil
	}
	raw := r.URL
	if raw == "" {
		raw = DefaultRedisURL
	}
	opt, reason := parseRedisURL(raw)
	if reason != "" {
		return nil, fmt.Errorf("redis URL %s: %s", RedactURL(raw), reason)
	}
	return opt, nil
}

// Retry settings of the Sentinel and Cluster clients UniversalClient makes:
// a command that meets a connection error (the master just died) is retried
// for several seconds, about 10 s at most, so that it outlives a failover
// (Sentinel: down-after-milliseconds plus the election, typically 2-5 s)
// instead of failing the task that issued it. go-redis retries only errors
// after which the command can be sent again (connection refused or reset,
// READONLY, LOADING, MASTERDOWN, TRYAGAIN, CLUSTERDOWN), never a reply.
const (
	FailoverMaxRetries      = 10
	FailoverMinRetryBackoff = 250 * time.Millisecond
	FailoverMaxRetryBackoff = 2 * time.Second
)

// PoolSize bounds the pooled Redis connections of one process (per node
// with Cluster), instead of go-redis's 10 per CPU, and pipelines share that
// pool (no second pool of 10 for them): commands are short, and a worker
// adds one subscription connection per portal queue it runs, so a process
// stays near 20 connections whatever the machine (see docs/scaling.md).
const PoolSize = 8

// UniversalClient returns a go-redis client of the same kind as ConnOpt
// (single node, sentinel failover or cluster), for the packages that talk to
// Redis directly (limiter, import state, token store) and for asynq itself
// (the worker and the enqueue command build asynq on it). Sentinel and
// Cluster clients retry a command through a failover (see
// FailoverMaxRetries); every kind pools PoolSize connections. The caller
// closes it. It does not connect; the first command does.
func (r Redis) UniversalClient() (redis.UniversalClient, error) {
	opt, err := r.ConnOpt()
	if err != nil {
		return nil, err
	}
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		return redis.NewClient(&redis.Options{
			Network:          o.Network,
			Addr:             o.Addr,
			Username:         o.Username,
			Password:         o.Password,
			DB:               o.DB,
			DialTimeout:      o.DialTimeout,
			ReadTimeout:      o.ReadTimeout,
			WriteTimeout:     o.WriteTimeout,
			PoolSize:         cmp.Or(o.PoolSize, PoolSize),
			PipelinePoolSize: -1,
			TLSConfig:        o.TLSConfig,
		}), nil
	case asynq.RedisFailoverClientOpt:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       o.MasterName,
			SentinelAddrs:    o.SentinelAddrs,
			SentinelUsername: o.SentinelUsername,
			SentinelPassword: o.SentinelPassword,
			Username:         o.Username,
			Password:         o.Password,
			DB:               o.DB,
			DialTimeout:      o.DialTimeout,
			ReadTimeout:      o.ReadTimeout,
			WriteTimeout:     o.WriteTimeout,
			PoolSize:         cmp.Or(o.PoolSize, PoolSize),
			PipelinePoolSize: -1,
			TLSConfig:        o.TLSConfig,
			MaxRetries:       FailoverMaxRetries,
			MinRetryBackoff:  FailoverMinRetryBackoff,
			MaxRetryBackoff:  FailoverMaxRetryBackoff,
		}), nil
	case asynq.RedisClusterClientOpt:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:        o.Addrs,
			Username:     o.Username,
			Password:     o.Password,
			DialTimeout:  o.DialTimeout,
			ReadTimeout:  o.ReadTimeout,
			WriteTimeout: o.WriteTimeout,
			PoolSize:     PoolSize,
			// No pipeline pool is made unless its buffers are set; -1 says so.
			PipelinePoolSize: -1,
			TLSConfig:        o.TLSConfig,
			MaxRedirects:     FailoverMaxRetries,
			MinRetryBackoff:  FailoverMinRetryBackoff,
			MaxRetryBackoff:  FailoverMaxRetryBackoff,
		}), nil
	}
	c, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		// Only if asynq and this module disagree on the go-redis major version.
		return nil, errors.New("redis: asynq made a client that is not a go-redis v9 UniversalClient")
	}
	return c, nil
}

// parseRedisURL is asynq.ParseRedisURI with checks asynq leaves out (a host,
// a non-negative DB, a sentinel master name) and reasons that never quote
// the URL, hence never its password.
func parseRedisURL(raw string) (asynq.RedisConnOpt, string) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, urlReason(err)
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			return nil, "has no host:port"
		}
		if u.Port() != "" {
			if reason := checkHostPort(u.Host); reason != "" {
				return nil, reason
			}
		}
		if db := strings.Trim(u.Path, "/"); db != "" {
			if n, err := strconv.Atoi(strings.Split(db, "/")[0]); err != nil || n < 0 {
				return nil, "the path must be a database number, as in redis://host:6379/0"
			}
		}
	case "redis-socket":
		if u.Path == "" {
			return nil, "has no socket path, as in redis-socket:///run/redis.sock?db=0"
		}
	case "redis-sentinel":
		if u.Host == "" {
			return nil, "has no sentinel addresses, as in redis-sentinel://host1:26379,host2:26379?master=mymaster"
		}
		for _, a := range strings.Split(u.Host, ",") {
			if reason := checkHostPort(a); reason != "" {
				return nil, fmt.Sprintf("sentinel address %q: %s", a, reason)
			}
		}
		if u.Query().Get("master") == "" {
			return nil, "has no ?master=NAME"
		}
	default:
		return nil, fmt.Sprintf("unsupported scheme %q (use redis://, rediss://, redis-socket:// or redis-sentinel://)", u.Scheme)
	}
	opt, err := asynq.ParseRedisURI(raw)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "asynq: ")
		return nil, strings.ReplaceAll(msg, raw, RedactURL(raw))
	}
	if c, ok := opt.(asynq.RedisClientOpt); ok && u.User != nil {
		c.Username = u.User.Username()
		opt = c
	}
	return opt, ""
}

// checkHostPort validates "host:port" with a numeric port 1..65535.
func checkHostPort(a string) string {
	host, port, err := net.SplitHostPort(strings.TrimSpace(a))
	if err != nil {
		return "must be host:port"
	}
	if host == "" {
		return "has no host"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "port must be a number from 1 to 65535"
	}
	return ""
}

// splitAddrs splits a comma separated list, dropping empty items and spaces.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// validateRedis checks r, naming the variable or flag (urlName) at fault.
func validateRedis(r Redis, urlName string, p *problems) {
	if len(r.ClusterAddrs) > 0 {
		for _, a := range r.ClusterAddrs {
			if reason := checkHostPort(a); reason != "" {
				p.addf("REDIS_CLUSTER_ADDRS item %q: %s", a, reason)
			}
		}
		return
	}
	if u, err := url.Parse(r.URL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			p.secret(pw)
		}
	}
	if _, reason := parseRedisURL(r.URL); reason != "" {
		p.addf("%s %s: %s", urlName, RedactURL(r.URL), reason)
	}
}

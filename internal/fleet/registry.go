// Package fleet lets one fleet of workers serve thousands of portals:
//
//   - the Registry of portals registered at run time (POST /v1/portals,
//     enqueue portal add), besides those of each worker's configuration;
//     their secrets live only in the TokenStore's keys of that portal;
//   - the Members of the fleet: every worker writes a heartbeat with the
//     portals of its own configuration, so producers know which portals
//     exist (Known) and workers know who else is alive;
//   - Owners: which live workers run the queue of a portal that has work
//     (rendezvous hashing, WORKER_PORTAL_REPLICAS of them), so that no
//     process holds every portal and a dead worker's portals move to the
//     others once its heartbeat expires.
//
// Which portals have work is tasks.Activity; the worker's coordinator
// (internal/worker) puts the three together.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/config"
	"github.com/b24queue/b24queue/internal/keys"
)

// Auth kinds of a Record.
const (
	AuthWebhook = "webhook"
	AuthOAuth   = "oauth"
)

// Record is what the fleet tells about a registered portal: never a secret.
type Record struct {
	Name string `json:"name"`
	// Auth is AuthWebhook or AuthOAuth.
	Auth string `json:"auth"`
	// Host is the portal's host name (from its webhook or portal URL).
	Host string `json:"host"`
	// The portal's limits, durations as Go durations ("480s").
	Rate            float64 `json:"rate"`
	Burst           int     `json:"burst"`
	OperatingLimit  string  `json:"operating_limit"`
	OperatingWindow string  `json:"operating_window"`
	// RegisteredAt is when it was last registered (or registered again).
	RegisteredAt time.Time `json:"registered_at"`
	// Revision is the registry's version at that registration: workers
	// that hold the portal rebuild its client when it changes.
	Revision int64 `json:"revision"`
}

// Limits returns the record's limits.
func (r Record) Limits() config.Limits {
	lim, _ := time.ParseDuration(r.OperatingLimit)
	win, _ := time.ParseDuration(r.OperatingWindow)
	return config.Limits{Rate: r.Rate, Burst: r.Burst, OperatingLimit: lim, OperatingWindow: win}
}

// ErrNotRegistered is returned for a portal the registry does not hold.
var ErrNotRegistered = errors.New("portal is not registered")

// Registry is the fleet's list of portals registered at run time, in Redis
// (keys.Portals, keys.PortalsVersion) with their secrets in the TokenStore.
// It is safe for concurrent use.
type Registry struct {
	rdb    redis.UniversalClient
	keys   keys.Space
	tokens *TokenStore
}

// NewRegistry returns the registry under prefix ("" means the default).
func NewRegistry(rdb redis.UniversalClient, prefix string) *Registry {
	return &Registry{rdb: rdb, keys: keys.New(prefix), tokens: NewTokenStore(rdb, prefix)}
}

// Tokens returns the token store the registry keeps the secrets in.
func (r *Registry) Tokens() *TokenStore { return r.tokens }

// Add registers p (as config.ParsePortal returned it), or replaces the
// registration of that name: new credentials, tokens or limits. The secrets
// go to the TokenStore only (an OAuth portal's tokens replace any stored
// pair: they are what the install event just delivered). It returns the
// public record and whether the name was new.
func (r *Registry) Add(ctx context.Context, p config.Portal) (Record, bool, error) {
	rec := Record{Name: p.Name, Rate: p.Limits.Rate, Burst: p.Limits.Burst,
		OperatingLimit: p.Limits.OperatingLimit.String(), OperatingWindow: p.Limits.OperatingWindow.String(),
		RegisteredAt: time.Now().UTC().Truncate(time.Second)}
	var cred Credential
	if p.OAuth != nil {
		rec.Auth, rec.Host = AuthOAuth, hostOf(p.OAuth.PortalURL)
		cred = Credential{PortalURL: p.OAuth.PortalURL, ClientID: p.OAuth.ClientID,
			ClientSecret: p.OAuth.ClientSecret, TokenEndpoint: p.OAuth.TokenEndpoint}
	} else {
		rec.Auth, rec.Host = AuthWebhook, hostOf(p.WebhookURL)
		cred = Credential{WebhookURL: p.WebhookURL}
	}
	if err := r.tokens.SaveCredential(ctx, p.Name, cred); err != nil {
		return Record{}, false, err
	}
	if p.OAuth != nil {
		tok := b24.Token{AccessToken: p.OAuth.AccessToken, RefreshToken: p.OAuth.RefreshToken}
		if err := r.tokens.Save(ctx, p.Name, tok); err != nil {
			return Record{}, false, err
		}
	}
	data, err := json.Marshal(rec) // the revision is the changes set's score
	if err != nil {
		return Record{}, false, fmt.Errorf("register portal %s: %w", p.Name, err)
	}
	res, err := registerScript.Run(ctx, r.rdb, r.scriptKeys(), p.Name, data).Int64Slice()
	if err != nil || len(res) != 2 {
		return Record{}, false, fmt.Errorf("register portal %s: %w (%v)", p.Name, err, res)
	}
	rec.Revision = res[0]
	return rec, res[1] == 1, nil
}

// The registry's three keys share the hash tag {portals}, so that a change
// is one script: a worker that sees the version moved sees every change up
// to it.
func (r *Registry) scriptKeys() []string {
	return []string{r.keys.Portals(), r.keys.PortalsVersion(), r.keys.PortalsChanges()}
}

// registerScript records a registration.
//
// KEYS[1] -> PREFIX:{portals} (name → record JSON)
// KEYS[2] -> PREFIX:{portals}:version
// KEYS[3] -> PREFIX:{portals}:changes (name → revision of its last change)
// --
// ARGV[1] -> portal name
// ARGV[2] -> record JSON
//
// Output: {revision, 1 when the name was new else 0}
var registerScript = redis.NewScript(`
local rev = redis.call('INCR', KEYS[2])
local new = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], rev, ARGV[1])
return {rev, new}
`)

// removeScript records a removal.
//
// KEYS as registerScript; ARGV[1] -> portal name.
//
// Output: the revision of the removal, or 0 when the name was not
// registered.
var removeScript = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local rev = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[3], rev, ARGV[1])
return rev
`)

// Get returns the record of portal name; ok is false when it is not
// registered. The record and its revision come in one round trip (the
// keys share the {portals} slot).
func (r *Registry) Get(ctx context.Context, name string) (Record, bool, error) {
	var data *redis.StringCmd
	var rev *redis.FloatCmd
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		data = p.HGet(ctx, r.keys.Portals(), name)
		rev = p.ZScore(ctx, r.keys.PortalsChanges(), name)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Record{}, false, fmt.Errorf("read portal %s: %w", name, err)
	}
	raw, err := data.Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return Record{}, false, nil
	case err != nil:
		return Record{}, false, fmt.Errorf("read portal %s: %w", name, err)
	}
	rec, err := decodeRecord(name, raw)
	if err != nil {
		return Record{}, false, err
	}
	rec.Revision = int64(rev.Val()) // 0 when the changes set lacks it
	return rec, true, nil
}

// List returns every registered portal, sorted by name.
func (r *Registry) List(ctx context.Context) ([]Record, error) {
	m, err := r.rdb.HGetAll(ctx, r.keys.Portals()).Result()
	if err != nil {
		return nil, fmt.Errorf("list registered portals: %w", err)
	}
	revs, err := r.rdb.ZRangeWithScores(ctx, r.keys.PortalsChanges(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list registered portals: %w", err)
	}
	rev := make(map[string]int64, len(revs))
	for _, z := range revs {
		if n, ok := z.Member.(string); ok {
			rev[n] = int64(z.Score)
		}
	}
	out := make([]Record, 0, len(m))
	for name, data := range m {
		rec, err := decodeRecord(name, []byte(data))
		if err != nil {
			return nil, err
		}
		rec.Revision = rev[name]
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Names returns the names of the registered portals (unsorted).
func (r *Registry) Names(ctx context.Context) ([]string, error) {
	names, err := r.rdb.HKeys(ctx, r.keys.Portals()).Result()
	if err != nil {
		return nil, fmt.Errorf("list registered portals: %w", err)
	}
	return names, nil
}

// Version returns the registry's change counter (0 before any change).
func (r *Registry) Version(ctx context.Context) (int64, error) {
	v, err := r.rdb.Get(ctx, r.keys.PortalsVersion()).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("read the registry version: %w", err)
	}
	return v, nil
}

// Changes returns the portals changed after revision since (0: every
// portal ever registered) with their revision now, 0 for a removed one,
// and the highest revision seen, which the caller passes as since next
// time. It reads only what changed: a worker calls it when Version moved.
func (r *Registry) Changes(ctx context.Context, since int64) (map[string]int64, int64, error) {
	zs, err := r.rdb.ZRangeByScoreWithScores(ctx, r.keys.PortalsChanges(),
		&redis.ZRangeBy{Min: "(" + strconv.FormatInt(since, 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, since, fmt.Errorf("read the registry's changes: %w", err)
	}
	out := make(map[string]int64, len(zs))
	if len(zs) == 0 {
		return out, since, nil
	}
	names := make([]string, len(zs))
	revs := make([]int64, len(zs))
	for i, z := range zs {
		names[i], _ = z.Member.(string)
		revs[i] = int64(z.Score)
		since = max(since, revs[i])
	}
	for start := 0; start < len(names); start += changesChunk {
		chunk := names[start:min(start+changesChunk, len(names))]
		vals, err := r.rdb.HMGet(ctx, r.keys.Portals(), chunk...).Result()
		if err != nil {
			return nil, since, fmt.Errorf("read the registry's changes: %w", err)
		}
		for i, v := range vals {
			out[chunk[i]] = 0 // removed, unless its record is there
			if _, ok := v.(string); ok {
				out[chunk[i]] = revs[start+i]
			}
		}
	}
	return out, since, nil
}

// changesChunk bounds the fields of one HMGET.
const changesChunk = 1000

// Remove forgets portal name: its record, credential and tokens. Workers
// stop running its queue within a second or two (see the coordinator).
func (r *Registry) Remove(ctx context.Context, name string) error {
	rev, err := removeScript.Run(ctx, r.rdb, r.scriptKeys(), name).Int64()
	if err != nil {
		return fmt.Errorf("remove portal %s: %w", name, err)
	}
	if rev == 0 {
		return fmt.Errorf("remove portal %s: %w", name, ErrNotRegistered)
	}
	return r.tokens.Forget(ctx, name)
}

// Load returns the configuration a worker serves registered portal name
// with: the record's limits and the stored credential. An OAuth portal's
// tokens are not in it: its client loads them from the TokenStore.
func (r *Registry) Load(ctx context.Context, name string) (config.Portal, Record, error) {
	rec, ok, err := r.Get(ctx, name)
	if err != nil {
		return config.Portal{}, Record{}, err
	}
	if !ok {
		return config.Portal{}, Record{}, fmt.Errorf("load portal %s: %w", name, ErrNotRegistered)
	}
	cred, ok, err := r.tokens.LoadCredential(ctx, name)
	if err != nil {
		return config.Portal{}, Record{}, err
	}
	if !ok {
		return config.Portal{}, Record{}, fmt.Errorf("load portal %s: its credential is missing from the token store", name)
	}
	p := config.Portal{Name: name, Limits: rec.Limits(), WebhookURL: cred.WebhookURL}
	if rec.Auth == AuthOAuth {
		p.WebhookURL = ""
		p.OAuth = &config.OAuth{PortalURL: cred.PortalURL, ClientID: cred.ClientID,
			ClientSecret: cred.ClientSecret, TokenEndpoint: cred.TokenEndpoint}
	}
	return p, rec, nil
}

func decodeRecord(name string, data []byte) (Record, error) {
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, fmt.Errorf("read portal %s: the stored record does not decode", name)
	}
	rec.Name = name
	return rec, nil
}

// hostOf returns the host of a URL, without user info or port.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/keys"
)

// TokenTTL is how long a stored OAuth token pair outlives its last refresh.
// Bitrix24 refresh tokens are valid for 180 days; an older pair is useless.
const TokenTTL = 180 * 24 * time.Hour

// TokenStore is the Redis b24.TokenStore shared by every worker process: a
// refresh token is single-use, so whoever refreshes publishes the new pair
// here and the others (and a restarted worker) load it. Each pair lives
// under PREFIX:{KEY}:oauth (keys.Space.OAuth; KEY is the portal name the
// worker passes as OAuthConfig.StoreKey; the braces keep it in the portal's
// cluster hash slot) as JSON, with a TTL of TokenTTL. It also keeps the
// credentials of registered portals (CredentialKey). It is safe for
// concurrent use. The values are secrets: TokenStore never logs them and
// its errors never contain them.
type TokenStore struct {
	rdb  redis.UniversalClient
	keys keys.Space
}

// NewTokenStore returns a store keeping pairs in rdb under prefix (empty
// means DefaultPrefix).
func NewTokenStore(rdb redis.UniversalClient, prefix string) *TokenStore {
	return &TokenStore{rdb: rdb, keys: keys.New(prefix)}
}

// Key returns the Redis key of key's token pair.
func (s *TokenStore) Key(key string) string { return s.keys.OAuth(key) }

// storedToken is the JSON form of a pair; ExpiresAt is omitted when
// unknown, the refusal when the refresh token was not refused.
type storedToken struct {
	AccessToken        string    `json:"access_token"`
	RefreshToken       string    `json:"refresh_token"`
	ExpiresAt          time.Time `json:"expires_at,omitzero"`
	RefusedCode        string    `json:"refused_code,omitempty"`
	RefusedDescription string    `json:"refused_description,omitempty"`
}

// Load returns the stored pair of key; ok is false when none is stored (or
// it expired). A value that does not decode is an error (without the value).
func (s *TokenStore) Load(ctx context.Context, key string) (b24.Token, bool, error) {
	data, err := s.rdb.Get(ctx, s.Key(key)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return b24.Token{}, false, nil
	case err != nil:
		return b24.Token{}, false, fmt.Errorf("load OAuth token of %q: %w", key, err)
	}
	var st storedToken
	if err := json.Unmarshal(data, &st); err != nil {
		// The json error may quote part of the value: do not wrap it.
		return b24.Token{}, false, fmt.Errorf("load OAuth token of %q: stored value is not a token pair", key)
	}
	return b24.Token{AccessToken: st.AccessToken, RefreshToken: st.RefreshToken, ExpiresAt: st.ExpiresAt,
		RefusedCode: st.RefusedCode, RefusedDescription: st.RefusedDescription}, true, nil
}

// Save stores t as key's pair, replacing any earlier one, for TokenTTL. The
// latest Save wins: the client saves right after a successful refresh, and
// the pair it got is the only valid one.
func (s *TokenStore) Save(ctx context.Context, key string, t b24.Token) error {
	data, err := json.Marshal(storedToken{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, ExpiresAt: t.ExpiresAt,
		RefusedCode: t.RefusedCode, RefusedDescription: t.RefusedDescription})
	if err != nil {
		return fmt.Errorf("save OAuth token of %q: encode: %w", key, err)
	}
	if err := s.rdb.Set(ctx, s.Key(key), data, TokenTTL).Err(); err != nil {
		return fmt.Errorf("save OAuth token of %q: %w", key, err)
	}
	return nil
}

var _ b24.TokenStore = (*TokenStore)(nil)

// Credential is how a portal registered at run time is reached: its
// webhook URL, or its OAuth application (the token pair lives apart, under
// Key, because every refresh replaces it). Secrets: it is stored only under
// CredentialKey and never leaves a worker.
type Credential struct {
	WebhookURL    string `json:"webhook_url,omitempty"`
	PortalURL     string `json:"portal_url,omitempty"`
	ClientID      string `json:"client_id,omitempty"`
	ClientSecret  string `json:"client_secret,omitempty"`
	TokenEndpoint string `json:"token_endpoint,omitempty"`
}

// CredentialKey returns the Redis key of a registered portal's credential.
func (s *TokenStore) CredentialKey(portal string) string { return s.keys.Credential(portal) }

// SaveCredential stores c as portal's credential, without expiry: a
// registered portal keeps it until it is removed.
func (s *TokenStore) SaveCredential(ctx context.Context, portal string, c Credential) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("save the credential of %q: encode: %w", portal, err)
	}
	if err := s.rdb.Set(ctx, s.CredentialKey(portal), data, 0).Err(); err != nil {
		return fmt.Errorf("save the credential of %q: %w", portal, err)
	}
	return nil
}

// LoadCredential returns portal's credential; ok is false when none is
// stored. A value that does not decode is an error (without the value).
func (s *TokenStore) LoadCredential(ctx context.Context, portal string) (Credential, bool, error) {
	data, err := s.rdb.Get(ctx, s.CredentialKey(portal)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return Credential{}, false, nil
	case err != nil:
		return Credential{}, false, fmt.Errorf("load the credential of %q: %w", portal, err)
	}
	var c Credential
	if err := json.Unmarshal(data, &c); err != nil {
		return Credential{}, false, fmt.Errorf("load the credential of %q: stored value is not a credential", portal)
	}
	return c, true, nil
}

// Forget deletes portal's credential and token pair (one DEL: the keys
// share the portal's hash slot).
func (s *TokenStore) Forget(ctx context.Context, portal string) error {
	if err := s.rdb.Del(ctx, s.CredentialKey(portal), s.Key(portal)).Err(); err != nil {
		return fmt.Errorf("forget the credential and token pair of %q: %w", portal, err)
	}
	return nil
}

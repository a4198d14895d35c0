package provision

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/oauthwire"
)

// Token store contract errors, checked by authztest.RunTokenStore.
var (
	// ErrTokenNotFound reports that no token has the given hash.
	ErrTokenNotFound = errors.New("authz: token not found")
	// ErrTokenExists reports a Put whose hash is already stored.
	ErrTokenExists = errors.New("authz: token already stored")
	// ErrInvalidTokenRecord reports a record missing a required field.
	ErrInvalidTokenRecord = errors.New("authz: invalid token record")
)

// tokenPrefix marks tokens issued by this package so secret scanners can
// find leaked ones.
const tokenPrefix = "apt_"

// newAccessToken returns a fresh 256-bit random bearer token.
func newAccessToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("authz: crypto/rand failed: " + err.Error())
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// IssuedToken is a provider-issued bearer token as stored: never the token
// itself, only its hash.
type IssuedToken struct {
	Hash      authz.TokenHash `json:"hash"`
	AccountID string          `json:"account_id"`
	// User is the orchestrator user the token was issued to; only
	// that orchestrator may revoke it.
	User      UserRef   `json:"user"`
	Scopes    []string  `json:"scopes"`
	Service   string    `json:"service,omitempty"`
	Project   string    `json:"project,omitempty"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// RevokedAt is zero while the token is live.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Revoked reports whether the token was revoked.
func (t *IssuedToken) Revoked() bool { return !t.RevokedAt.IsZero() }

// TokenStore persists issued bearer tokens by hash.
//
// Revocations are idempotent: revoking a revoked token keeps its first
// RevokedAt. Implementations must be safe for concurrent use.
type TokenStore interface {
	// Put stores a new token; ErrTokenExists if the hash is present,
	// ErrInvalidTokenRecord if a required field is missing or a scope is
	// not an RFC 6749 scope token.
	Put(ctx context.Context, tok IssuedToken) error
	// Lookup returns the token with hash h (revoked or not), or
	// ErrTokenNotFound.
	Lookup(ctx context.Context, h authz.TokenHash) (*IssuedToken, error)
	// Revoke marks the token with hash h revoked at `at` if it was issued
	// to issuer. It reports whether a live token was revoked by this call;
	// unknown hashes and other issuers' tokens are not errors (revoked=false)
	// so a revocation never reveals which tokens exist.
	Revoke(ctx context.Context, h authz.TokenHash, issuer string, at time.Time) (revoked bool, err error)
	// RevokeAccount revokes every live token of accountID issued to
	// issuer and returns how many it revoked.
	RevokeAccount(ctx context.Context, accountID, issuer string, at time.Time) (int, error)
}

// MemoryTokenStore is an in-process TokenStore, safe for concurrent use.
type MemoryTokenStore struct {
	mu     sync.Mutex
	tokens map[authz.TokenHash]*IssuedToken
}

// NewMemoryTokenStore returns an empty in-memory TokenStore.
func NewMemoryTokenStore() *MemoryTokenStore {
	return &MemoryTokenStore{tokens: map[authz.TokenHash]*IssuedToken{}}
}

func validTokenRecord(t *IssuedToken) bool {
	for _, s := range t.Scopes {
		if !oauthwire.ValidScopeToken(s) {
			return false
		}
	}
	return t.Hash != (authz.TokenHash{}) && t.AccountID != "" && t.User.valid() && !t.ExpiresAt.IsZero()
}

// Put implements TokenStore.
func (s *MemoryTokenStore) Put(ctx context.Context, tok IssuedToken) error {
	if !validTokenRecord(&tok) {
		return ErrInvalidTokenRecord
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tokens[tok.Hash]; ok {
		return ErrTokenExists
	}
	tok.Scopes = slices.Clone(tok.Scopes)
	s.tokens[tok.Hash] = &tok
	return nil
}

// Lookup implements TokenStore.
func (s *MemoryTokenStore) Lookup(ctx context.Context, h authz.TokenHash) (*IssuedToken, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[h]
	if !ok {
		return nil, ErrTokenNotFound
	}
	c := *t
	c.Scopes = slices.Clone(t.Scopes)
	return &c, nil
}

// Revoke implements TokenStore.
func (s *MemoryTokenStore) Revoke(ctx context.Context, h authz.TokenHash, issuer string, at time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[h]
	if !ok || t.User.Issuer != issuer || t.Revoked() {
		return false, nil
	}
	t.RevokedAt = at
	return true, nil
}

// RevokeAccount implements TokenStore.
func (s *MemoryTokenStore) RevokeAccount(ctx context.Context, accountID, issuer string, at time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.tokens {
		if t.AccountID == accountID && t.User.Issuer == issuer && !t.Revoked() {
			t.RevokedAt = at
			n++
		}
	}
	return n, nil
}

// DeleteExpired forgets tokens that expired before `before` and reports how
// many; expired tokens are useless, but their records are evidence, so keep
// them as long as your audit needs (e.g. before = now - 90 days).
func (s *MemoryTokenStore) DeleteExpired(ctx context.Context, before time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for h, t := range s.tokens {
		if t.ExpiresAt.Before(before) {
			delete(s.tokens, h)
			n++
		}
	}
	return n, nil
}

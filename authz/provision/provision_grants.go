package provision

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/agentprov/agentprov/internal/clock"
)

// Grant store contract errors, checked by authztest.RunGrantStore.
var (
	// ErrGrantNotFound reports that no grant has the key or user code.
	ErrGrantNotFound = errors.New("authz: grant not found")
	// ErrGrantExists reports a Put whose key or user code is taken by a
	// grant that has not expired.
	ErrGrantExists = errors.New("authz: grant key or user code in use")
	// ErrGrantConflict reports an Update whose version is stale: another
	// request changed (or removed) the grant first.
	ErrGrantConflict = errors.New("authz: grant changed concurrently")
	// ErrGrantStoreFull reports that a bounded store holds its maximum of
	// live grants.
	ErrGrantStoreFull = errors.New("authz: too many pending grants")
)

// GrantKind tells device grants from authorization codes.
type GrantKind string

// Grant kinds.
const (
	GrantDevice GrantKind = "device"
	GrantCode   GrantKind = "code"
)

// GrantState is where a device grant stands in the human's decision.
type GrantState string

// Grant states.
const (
	GrantPending  GrantState = "pending"
	GrantApproved GrantState = "approved"
	GrantDenied   GrantState = "denied"
)

// Grant is an in-flight link request: a device code awaiting the human, or
// an issued authorization code awaiting redemption. The codes themselves are
// never stored, only their SHA-256 as Key.
type Grant struct {
	// Key is the hex SHA-256 of the device or authorization code.
	Key  string    `json:"key"`
	Kind GrantKind `json:"kind"`
	// UserCode is the device flow's user code (device grants only); it is
	// unique among live grants.
	UserCode string `json:"user_code,omitempty"`
	ClientID string `json:"client_id"`
	// User, Email, Name, Service and Project describe the attested
	// orchestrator user of a device grant, shown to the approving human.
	User    UserRef `json:"user"`
	Email   string  `json:"email,omitempty"`
	Name    string  `json:"name,omitempty"`
	Service string  `json:"service,omitempty"`
	Project string  `json:"project,omitempty"`
	// Scope is the requested scope string.
	Scope string `json:"scope,omitempty"`
	// RedirectURI and Challenge belong to authorization codes.
	RedirectURI string    `json:"redirect_uri,omitempty"`
	Challenge   string    `json:"challenge,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	// Interval and LastPoll pace device polling.
	Interval  time.Duration `json:"interval,omitempty"`
	LastPoll  time.Time     `json:"last_poll,omitzero"`
	State     GrantState    `json:"state"`
	AccountID string        `json:"account_id,omitempty"`
	// Version is maintained by the store: Put sets it to 1 and every
	// Update increments it.
	Version int64 `json:"-"`
}

// GrantStore holds in-flight grants for the device and code flows. Sharing
// one store (for example authz/sqlstore) lets several provisioner instances
// serve one flow without sticky routing. Every method is one atomic step;
// the Provisioner builds its state machine on Update (compare-and-set on
// Version) and Delete (single use: only one caller sees deleted=true).
// Implementations must be safe for concurrent use and pass
// authztest.RunGrantStore.
type GrantStore interface {
	// Put stores a new grant with Version 1. It fails with ErrGrantExists
	// when Key, or a non-empty UserCode, belongs to an unexpired grant
	// (expired ones may be replaced).
	Put(ctx context.Context, g Grant) error
	// Get returns the grant with key (expired or not) or ErrGrantNotFound.
	Get(ctx context.Context, key string) (*Grant, error)
	// GetByUserCode returns the device grant with userCode.
	GetByUserCode(ctx context.Context, userCode string) (*Grant, error)
	// Update replaces the grant with key g.Key if its stored Version is
	// g.Version, storing Version+1; otherwise ErrGrantConflict. Key,
	// Kind and UserCode must not change.
	Update(ctx context.Context, g Grant) error
	// Delete removes the grant and reports whether this call removed it.
	Delete(ctx context.Context, key string) (bool, error)
}

// MemoryGrantStoreOptions tune a MemoryGrantStore.
type MemoryGrantStoreOptions struct {
	// MaxGrants bounds the grants held; default 10000. When full, expired
	// grants are evicted; if none has expired Put fails with
	// ErrGrantStoreFull.
	MaxGrants int
	// Clock decides expiry for eviction; default time.Now.
	Clock func() time.Time
}

// MemoryGrantStore is an in-process GrantStore for a single provisioner
// instance. It is safe for concurrent use.
type MemoryGrantStore struct {
	mu     sync.Mutex
	max    int
	now    clock.Func
	grants map[string]*Grant
	byUser map[string]string
}

// NewMemoryGrantStore returns an empty in-memory GrantStore.
func NewMemoryGrantStore(opts *MemoryGrantStoreOptions) *MemoryGrantStore {
	if opts == nil {
		opts = &MemoryGrantStoreOptions{}
	}
	s := &MemoryGrantStore{max: opts.MaxGrants, now: opts.Clock, grants: map[string]*Grant{}, byUser: map[string]string{}}
	if s.max <= 0 {
		s.max = 10000
	}
	return s
}

func (s *MemoryGrantStore) dropLocked(g *Grant) {
	delete(s.grants, g.Key)
	if g.UserCode != "" && s.byUser[g.UserCode] == g.Key {
		delete(s.byUser, g.UserCode)
	}
}

// Put implements GrantStore.
func (s *MemoryGrantStore) Put(ctx context.Context, g Grant) error {
	if g.Key == "" || g.ExpiresAt.IsZero() {
		return errors.New("authz: grant needs a key and an expiry")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := s.now.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.grants[g.Key]; ok {
		if now.Before(old.ExpiresAt) {
			return ErrGrantExists
		}
		s.dropLocked(old)
	}
	if g.UserCode != "" {
		if k, ok := s.byUser[g.UserCode]; ok {
			if old := s.grants[k]; now.Before(old.ExpiresAt) {
				return ErrGrantExists
			}
			s.dropLocked(s.grants[k])
		}
	}
	if len(s.grants) >= s.max {
		for _, old := range s.grants {
			if !now.Before(old.ExpiresAt) {
				s.dropLocked(old)
			}
		}
		if len(s.grants) >= s.max {
			return ErrGrantStoreFull
		}
	}
	g.Version = 1
	s.grants[g.Key] = &g
	if g.UserCode != "" {
		s.byUser[g.UserCode] = g.Key
	}
	return nil
}

// Get implements GrantStore.
func (s *MemoryGrantStore) Get(ctx context.Context, key string) (*Grant, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.grants[key]
	if !ok {
		return nil, ErrGrantNotFound
	}
	c := *g
	return &c, nil
}

// GetByUserCode implements GrantStore.
func (s *MemoryGrantStore) GetByUserCode(ctx context.Context, userCode string) (*Grant, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.byUser[userCode]
	if !ok || userCode == "" {
		return nil, ErrGrantNotFound
	}
	c := *s.grants[k]
	return &c, nil
}

// Update implements GrantStore.
func (s *MemoryGrantStore) Update(ctx context.Context, g Grant) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.grants[g.Key]
	if !ok || cur.Version != g.Version || cur.Kind != g.Kind || cur.UserCode != g.UserCode {
		return ErrGrantConflict
	}
	g.Version++
	s.grants[g.Key] = &g
	return nil
}

// Delete implements GrantStore.
func (s *MemoryGrantStore) Delete(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.grants[key]
	if !ok {
		return false, nil
	}
	s.dropLocked(g)
	return true, nil
}

package paywall

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/payment"
)

// ChallengeState is the lifecycle of a claim at the provider (a Paywall
// claims the payment token presented, keyed by TokenClaimKey):
//
//	(absent) --Claim--> pending --handler 2xx--> served --settled--> done
//	                       \--handler failed / settlement refused------> done
//
// A served record keeps the withheld response so that a retry with the
// same credential settles (idempotently) and delivers it without running
// the handler again.
type ChallengeState string

// Challenge states.
const (
	ChallengePending ChallengeState = "pending"
	ChallengeServed  ChallengeState = "served"
	ChallengeDone    ChallengeState = "done"
)

// ChallengeRecord is what a ChallengeStore keeps per claim.
type ChallengeRecord struct {
	// ID is the claim key. A Paywall claims the token, not the challenge
	// (Changed in 0.2): ID is TokenClaimKey(iss, jti), so that a token
	// pays for at most one call whichever challenge it answers.
	ID string
	// Fingerprint identifies the credential that claimed the challenge
	// (SHA-256 of the Authorization value); only that exact credential may
	// see the outcome again.
	Fingerprint string
	State       ChallengeState
	// RetainUntil is when the store may forget the record: after it, the
	// challenge has expired and could not be claimed anyway.
	RetainUntil time.Time
	// Response is the withheld (served) or final (done) response.
	Response *payment.StoredResponse
}

func (r ChallengeRecord) clone() ChallengeRecord {
	r.Response = r.Response.Clone()
	return r
}

// ErrChallengeNotFound is returned by ChallengeStore.Get for an unknown id.
var ErrChallengeNotFound = &payment.Error{Code: "challenge_not_found", Status: http.StatusNotFound, Detail: "no such challenge"}

// ChallengeStore makes payment tokens presented at a 402 single-use
// across every instance of a provider (its records are keyed by
// TokenClaimKey). Implementations must be safe for concurrent use, and
// each operation must be atomic: the Paywall's guarantee of at most one
// settlement and one delivery per token rests on Claim being a true
// put-if-absent and Update a true compare-and-set.
type ChallengeStore interface {
	// Claim stores rec if no record with rec.ID exists and returns
	// (rec, true); otherwise it stores nothing and returns the existing
	// record and false.
	Claim(ctx context.Context, rec ChallengeRecord) (ChallengeRecord, bool, error)
	// Get returns the record for id, or an error matching ErrChallengeNotFound.
	Get(ctx context.Context, id string) (ChallengeRecord, error)
	// Update replaces the record for rec.ID if its current state is from
	// and its fingerprint equals rec.Fingerprint; otherwise it returns an
	// error matching ErrConflict (ErrChallengeNotFound if absent).
	Update(ctx context.Context, from ChallengeState, rec ChallengeRecord) error
}

// MemoryChallengeStoreOptions configures NewMemoryChallengeStore.
type MemoryChallengeStoreOptions struct {
	// Now is the clock used to forget records past RetainUntil (default time.Now).
	Now func() time.Time
	// MaxRecords bounds memory; when full of unexpired records Claim fails
	// closed with ErrStore (default 100000).
	MaxRecords int
}

// MemoryChallengeStore is an in-process ChallengeStore. It suits a single
// provider instance; several instances need a shared store. Safe for
// concurrent use.
type MemoryChallengeStore struct {
	now clock.Func
	max int

	mu      sync.Mutex
	records map[string]ChallengeRecord
}

// NewMemoryChallengeStore returns an empty MemoryChallengeStore. Nil
// options mean the defaults.
func NewMemoryChallengeStore(opts *MemoryChallengeStoreOptions) *MemoryChallengeStore {
	s := &MemoryChallengeStore{max: 100000, records: map[string]ChallengeRecord{}}
	if opts != nil {
		s.now = opts.Now
		if opts.MaxRecords > 0 {
			s.max = opts.MaxRecords
		}
	}
	return s
}

// Claim implements ChallengeStore.
func (s *MemoryChallengeStore) Claim(ctx context.Context, rec ChallengeRecord) (ChallengeRecord, bool, error) {
	if err := ctx.Err(); err != nil {
		return ChallengeRecord{}, false, payment.ErrStore.With(err, "claim challenge")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.records[rec.ID]; ok {
		return cur.clone(), false, nil
	}
	if len(s.records) >= s.max {
		now := s.now.Now()
		for id, r := range s.records {
			if now.After(r.RetainUntil) {
				delete(s.records, id)
			}
		}
		if len(s.records) >= s.max {
			return ChallengeRecord{}, false, payment.ErrStore.With(nil, "challenge store is full (%d records)", s.max)
		}
	}
	s.records[rec.ID] = rec.clone()
	return rec, true, nil
}

// Get implements ChallengeStore.
func (s *MemoryChallengeStore) Get(ctx context.Context, id string) (ChallengeRecord, error) {
	if err := ctx.Err(); err != nil {
		return ChallengeRecord{}, payment.ErrStore.With(err, "get challenge")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.records[id]
	if !ok {
		return ChallengeRecord{}, ErrChallengeNotFound.With(nil, "challenge %q", id)
	}
	return cur.clone(), nil
}

// Update implements ChallengeStore.
func (s *MemoryChallengeStore) Update(ctx context.Context, from ChallengeState, rec ChallengeRecord) error {
	if err := ctx.Err(); err != nil {
		return payment.ErrStore.With(err, "update challenge")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.records[rec.ID]
	if !ok {
		return ErrChallengeNotFound.With(nil, "challenge %q", rec.ID)
	}
	if cur.State != from || cur.Fingerprint != rec.Fingerprint {
		return payment.ErrConflict.With(nil, "challenge %q is %s, not %s", rec.ID, cur.State, from)
	}
	s.records[rec.ID] = rec.clone()
	return nil
}

package issuer

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
)

// Redemption is the orchestrator's record of one payment token, keyed by
// its hold id, from minting to a final state. Stores keep it verbatim.
// A plain value: stores hand out copies.
type Redemption struct {
	HoldID  string                  `json:"hold_id"`
	State   payment.RedemptionState `json:"state"`
	Version int64                   `json:"version"` // 1 on creation, +1 on every Update (compare-and-set)

	Provider    string       `json:"provider"`
	Service     string       `json:"service"` // service ref
	Project     string       `json:"project"`
	MaxAmount   budget.Money `json:"max_amount"`
	IssuedAt    time.Time    `json:"issued_at"`
	ExpiresAt   time.Time    `json:"expires_at"`
	ChallengeID string       `json:"challenge_id,omitempty"`
	MintKey     string       `json:"mint_key"` // idempotency key of the mint

	Amount     budget.Money `json:"amount"`               // redeemed amount, set from pending on
	RedeemedAt time.Time    `json:"redeemed_at,omitzero"` // set from pending on
	Receipt    string       `json:"receipt,omitempty"`    // signed receipt, set from committed on
	Reference  string       `json:"reference,omitempty"`  // rail reference, set when settled

	Attempts      int       `json:"attempts"`                 // settlement attempts made
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"` // when the outbox next looks at a non-final record
	LastError     string    `json:"last_error,omitempty"`     // last transient failure, for operators
	Reason        string    `json:"reason,omitempty"`         // revocation or refusal reason
	UpdatedAt     time.Time `json:"updated_at"`
}

// RedemptionStore keeps Redemption records. Implementations offer only
// atomic primitives; the Issuer never reads and then writes without a
// compare-and-set. Every method must be safe for concurrent use.
//
// Contract (checked by paymenttest.RunRedemptionStore):
//   - Create stores r if no record has r.HoldID (put-if-absent) and returns
//     (r, true); otherwise it returns the existing record and false.
//   - Get returns the record or an error matching ErrNotFound.
//   - Update replaces the record iff the stored Version is r.Version-1,
//     else returns an error matching ErrConflict (ErrNotFound if absent).
//   - Due returns up to limit non-final records whose NextAttemptAt is not
//     after now, oldest NextAttemptAt first.
//
// Other failures should wrap ErrStore.
type RedemptionStore interface {
	Create(ctx context.Context, r Redemption) (Redemption, bool, error)
	Get(ctx context.Context, holdID string) (Redemption, error)
	Update(ctx context.Context, r Redemption) error
	Due(ctx context.Context, now time.Time, limit int) ([]Redemption, error)
}

// MemoryRedemptionStore is an in-process RedemptionStore. It is safe for
// concurrent use; its contents die with the process.
type MemoryRedemptionStore struct {
	mu   sync.Mutex
	recs map[string]Redemption
	open map[string]struct{} // non-final hold ids
}

// NewMemoryRedemptionStore returns an empty store.
func NewMemoryRedemptionStore() *MemoryRedemptionStore {
	return &MemoryRedemptionStore{recs: map[string]Redemption{}, open: map[string]struct{}{}}
}

// Create implements RedemptionStore.
func (s *MemoryRedemptionStore) Create(_ context.Context, r Redemption) (Redemption, bool, error) {
	if r.HoldID == "" || r.Version != 1 {
		return Redemption{}, false, payment.ErrInvalidRequest.With(nil, "redemption: hold id required and version must be 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.recs[r.HoldID]; ok {
		return old, false, nil
	}
	s.put(r)
	return r, true, nil
}

func (s *MemoryRedemptionStore) put(r Redemption) {
	s.recs[r.HoldID] = r
	if r.State.Final() {
		delete(s.open, r.HoldID)
	} else {
		s.open[r.HoldID] = struct{}{}
	}
}

// Get implements RedemptionStore.
func (s *MemoryRedemptionStore) Get(_ context.Context, holdID string) (Redemption, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[holdID]
	if !ok {
		return Redemption{}, payment.ErrNotFound
	}
	return r, nil
}

// Update implements RedemptionStore.
func (s *MemoryRedemptionStore) Update(_ context.Context, r Redemption) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.recs[r.HoldID]
	if !ok {
		return payment.ErrNotFound
	}
	if old.Version != r.Version-1 {
		return payment.ErrConflict
	}
	s.put(r)
	return nil
}

// Due implements RedemptionStore.
func (s *MemoryRedemptionStore) Due(_ context.Context, now time.Time, limit int) ([]Redemption, error) {
	s.mu.Lock()
	var out []Redemption
	for id := range s.open {
		if r := s.recs[id]; !r.NextAttemptAt.After(now) {
			out = append(out, r)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].NextAttemptAt.Equal(out[j].NextAttemptAt) {
			return out[i].NextAttemptAt.Before(out[j].NextAttemptAt)
		}
		return out[i].HoldID < out[j].HoldID
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

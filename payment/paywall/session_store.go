package paywall

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
)

// SessionState is the provider-side state of a metered session (§5.9.5).
//
//	open ──close (explicit, exhausted, idle, deadline)──▶ closing ──redeemed / released──▶ settled
type SessionState string

// The session states; settled is final.
const (
	SessionOpen    SessionState = "open"
	SessionClosing SessionState = "closing"
	SessionSettled SessionState = "settled"
)

// SessionWindow is how many sequence numbers below the highest one seen a
// session still accepts (each once): calls on one session may be in flight
// concurrently and arrive out of order, up to this many apart.
const SessionWindow = 256

// SessionRecord is a provider's record of one metered session, keyed by the
// session token's jti. Stores keep it verbatim. A plain value: stores hand
// out copies.
type SessionRecord struct {
	ID          string       `json:"id"` // the session token's jti (the orchestrator's hold id)
	Token       string       `json:"token"`
	ChallengeID string       `json:"challenge_id"`
	Service     string       `json:"service"`
	Max         budget.Money `json:"max"`
	// Deadline is the last instant a call is served: the token's expiry
	// minus the settlement window, so that the redemption lands in time.
	Deadline time.Time    `json:"deadline"`
	Expires  time.Time    `json:"expires"`
	State    SessionState `json:"state"`

	Consumed int64                      `json:"consumed"`  // minor units of the calls served (in flight included)
	Calls    int64                      `json:"calls"`     // calls served or in flight
	InFlight int64                      `json:"in_flight"` // calls consumed but not finished
	HighSeq  uint64                     `json:"high_seq"`  // highest sequence number accepted
	Seen     [SessionWindow / 64]uint64 `json:"seen"`      // bit i: HighSeq-i accepted
	LastUsed time.Time                  `json:"last_used"`
	OpenedAt time.Time                  `json:"opened_at"`

	Settled   int64  `json:"settled,omitempty"`   // amount redeemed (0: released)
	Reference string `json:"reference,omitempty"` // the orchestrator's receipt (compact JWS) or release marker
	LastError string `json:"last_error,omitempty"`
	Version   int64  `json:"version"` // 1 on creation, +1 on every change
}

// SessionStore keeps a provider's SessionRecords. It offers only atomic
// operations; the Paywall never reads a record and then writes it without
// one. Every method must be safe for concurrent use, and a store shared by
// several Paywall instances (processes) makes them behave as one.
//
// Contract:
//   - Open stores r (State open, Version 1) if no record has r.ID
//     (put-if-absent) and returns the stored record either way.
//   - Get returns the record or an error matching ErrSessionUnknown.
//   - Consume, in one atomic step, accepts call seq for amount iff the
//     record is open, now is before Deadline, seq is above HighSeq or in the
//     window below it and not yet accepted, and Consumed+amount ≤ Max:
//     it marks seq, adds amount to Consumed, increments Calls and InFlight
//     and sets LastUsed. Otherwise nothing changes and the error matches
//     ErrSessionClosed, ErrSessionReplay or ErrSessionExhausted.
//   - Finish decrements InFlight of a call Consume accepted; with refund
//     it also takes amount back off Consumed and Calls, but only while the
//     record is open (a closing record's total is already being redeemed).
//   - Close moves an open record to closing iff InFlight is 0 or now is
//     past Deadline, and returns the record; a record already closing or
//     settled is returned as is. ErrConflict when calls are in flight.
//   - Settle moves a closing record to settled with the redeemed amount
//     and reference; settling a settled record is a no-op.
//   - Due returns, in id order, up to limit (0: no limit) records that
//     are closing, or open with LastUsed at or before idleBefore, or open
//     with Deadline at or before now, or open with Consumed = Max
//     (SessionRecord.IsDue).
//
// The transitions are the SessionRecord Apply methods; a store runs one
// inside its atomic step. paymenttest.RunSessionStore is the conformance
// suite.
//
// Other failures should wrap ErrStore.
type SessionStore interface {
	Open(ctx context.Context, r SessionRecord) (SessionRecord, error)
	Get(ctx context.Context, id string) (SessionRecord, error)
	Consume(ctx context.Context, id string, seq uint64, amount int64, now time.Time) (SessionRecord, error)
	Finish(ctx context.Context, id string, amount int64, refund bool) error
	Close(ctx context.Context, id string, now time.Time) (SessionRecord, error)
	Settle(ctx context.Context, id string, amount int64, reference string) error
	Due(ctx context.Context, now, idleBefore time.Time, limit int) ([]SessionRecord, error)
}

// AcceptSeq applies the replay window of §5.9.5 to a record: it reports
// whether seq may be accepted and, if so, marks it. SessionStore
// implementations call it inside their atomic step.
func (r *SessionRecord) AcceptSeq(seq uint64) bool {
	if seq == 0 {
		return false
	}
	if seq > r.HighSeq {
		shift := seq - r.HighSeq
		r.shiftSeen(shift)
		r.HighSeq = seq
		r.Seen[0] |= 1
		return true
	}
	d := r.HighSeq - seq
	if d >= SessionWindow {
		return false
	}
	w, bit := d/64, uint64(1)<<(d%64)
	if r.Seen[w]&bit != 0 {
		return false
	}
	r.Seen[w] |= bit
	return true
}

// shiftSeen moves the window up by n sequence numbers.
func (r *SessionRecord) shiftSeen(n uint64) {
	const words = SessionWindow / 64
	if n >= SessionWindow {
		r.Seen = [words]uint64{}
		return
	}
	ws, bs := int(n/64), n%64
	for i := words - 1; i >= 0; i-- {
		var v uint64
		if j := i - ws; j >= 0 {
			v = r.Seen[j] << bs
			if bs > 0 && j-1 >= 0 {
				v |= r.Seen[j-1] >> (64 - bs)
			}
		}
		r.Seen[i] = v
	}
}

// The Apply methods below are the SessionStore contract's transitions as
// plain functions of a record: a store runs exactly one of them inside its
// atomic step (under a lock, or between a read and a compare-and-set on
// Version), so every store enforces the same rules. Each increments
// Version iff it changes the record, and changes nothing when it returns
// an error.

// ApplyConsume accepts call seq for amount at now (see SessionStore's
// Consume) or returns ErrSessionClosed, ErrSessionExhausted or
// ErrSessionReplay with r unchanged.
func (r *SessionRecord) ApplyConsume(seq uint64, amount int64, now time.Time) error {
	if r.State != SessionOpen || !now.Before(r.Deadline) {
		return payment.ErrSessionClosed
	}
	if amount <= 0 || r.Consumed+amount > r.Max.Amount {
		return payment.ErrSessionExhausted
	}
	// AcceptSeq changes the record only when it accepts.
	if !r.AcceptSeq(seq) {
		return payment.ErrSessionReplay
	}
	r.Consumed += amount
	r.Calls++
	r.InFlight++
	r.LastUsed = now
	r.Version++
	return nil
}

// ApplyFinish ends one call that ApplyConsume accepted; with refund, and
// only while r is open, it also takes amount back off Consumed and Calls.
func (r *SessionRecord) ApplyFinish(amount int64, refund bool) {
	changed := false
	if r.InFlight > 0 {
		r.InFlight--
		changed = true
	}
	if refund && r.State == SessionOpen && r.Calls > 0 && r.Consumed >= amount {
		r.Consumed -= amount
		r.Calls--
		changed = true
	}
	if changed {
		r.Version++
	}
}

// ApplyClose moves an open r to closing unless calls are in flight before
// the deadline (ErrConflict). A closing or settled r is left as it is.
func (r *SessionRecord) ApplyClose(now time.Time) error {
	if r.State != SessionOpen {
		return nil
	}
	if r.InFlight > 0 && now.Before(r.Deadline) {
		return payment.ErrConflict
	}
	r.State = SessionClosing
	r.Version++
	return nil
}

// ApplySettle moves a closing r to settled with the redeemed amount and
// reference and reports whether it changed r; settling a settled r is a
// no-op, settling an open one is ErrConflict.
func (r *SessionRecord) ApplySettle(amount int64, reference string) (bool, error) {
	switch r.State {
	case SessionSettled:
		return false, nil
	case SessionClosing:
		r.State, r.Settled, r.Reference = SessionSettled, amount, reference
		r.Version++
		return true, nil
	}
	return false, payment.ErrConflict
}

// IsDue reports whether Due returns r: it is closing, or open and idle
// since idleBefore, past its deadline, or used up.
func (r *SessionRecord) IsDue(now, idleBefore time.Time) bool {
	switch r.State {
	case SessionClosing:
		return true
	case SessionOpen:
		return !r.LastUsed.After(idleBefore) || !r.Deadline.After(now) || r.Consumed >= r.Max.Amount
	}
	return false
}

// MemorySessionStore is an in-process SessionStore. It is safe for
// concurrent use; its contents die with the process (a provider that
// restarts then cannot redeem what it served in the sessions it forgot:
// the loss is the provider's, never the payer's). Production providers
// want a durable store shared by their instances: sqlstore.SessionStore.
type MemorySessionStore struct {
	mu   sync.Mutex
	recs map[string]*SessionRecord
}

// NewMemorySessionStore returns an empty store.
func NewMemorySessionStore() *MemorySessionStore {
	return &MemorySessionStore{recs: map[string]*SessionRecord{}}
}

// Open implements SessionStore.
func (s *MemorySessionStore) Open(_ context.Context, r SessionRecord) (SessionRecord, error) {
	if r.ID == "" {
		return SessionRecord{}, payment.ErrInvalidRequest.With(nil, "session: id required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.recs[r.ID]; ok {
		return *old, nil
	}
	r.State, r.Version = SessionOpen, 1
	c := r
	s.recs[r.ID] = &c
	return r, nil
}

// Get implements SessionStore.
func (s *MemorySessionStore) Get(_ context.Context, id string) (SessionRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	if !ok {
		return SessionRecord{}, payment.ErrSessionUnknown
	}
	return *r, nil
}

// Consume implements SessionStore.
func (s *MemorySessionStore) Consume(_ context.Context, id string, seq uint64, amount int64, now time.Time) (SessionRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	if !ok {
		return SessionRecord{}, payment.ErrSessionUnknown
	}
	if err := r.ApplyConsume(seq, amount, now); err != nil {
		return SessionRecord{}, err
	}
	return *r, nil
}

// Finish implements SessionStore.
func (s *MemorySessionStore) Finish(_ context.Context, id string, amount int64, refund bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	if !ok {
		return payment.ErrSessionUnknown
	}
	r.ApplyFinish(amount, refund)
	return nil
}

// Close implements SessionStore.
func (s *MemorySessionStore) Close(_ context.Context, id string, now time.Time) (SessionRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	if !ok {
		return SessionRecord{}, payment.ErrSessionUnknown
	}
	err := r.ApplyClose(now)
	return *r, err
}

// Settle implements SessionStore.
func (s *MemorySessionStore) Settle(_ context.Context, id string, amount int64, reference string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	if !ok {
		return payment.ErrSessionUnknown
	}
	_, err := r.ApplySettle(amount, reference)
	return err
}

// Due implements SessionStore.
func (s *MemorySessionStore) Due(_ context.Context, now, idleBefore time.Time, limit int) ([]SessionRecord, error) {
	s.mu.Lock()
	var out []SessionRecord
	for _, r := range s.recs {
		if r.IsDue(now, idleBefore) {
			out = append(out, *r)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

package budget

import (
	"context"
	"time"
)

// Store is the persistence a Ledger runs on. Each method is one atomic step;
// the Ledger never reads a value and then writes a decision based on it, so a
// Store must make every check-and-change below indivisible (a mutex, a single
// conditional SQL statement, a transaction). The conformance suite in
// budgettest states the contract as tests; every implementation must pass it.
//
// A Store holds amounts of one currency: the Ledger refuses every other
// currency before calling it. Times passed in are the Ledger's clock; a Store
// never reads its own clock.
//
// Errors: the sentinels named below (possibly wrapped) for contract outcomes;
// any other error is a failure, and the Ledger fails closed on it.
//
// A Store must not retain a request (or its slices) after the call returns:
// the Ledger reuses them.
//
// Implementations must be safe for concurrent use, including by several
// Ledgers in several processes sharing the same data.
type Store interface {
	// Reserve inserts the hold described by req if, and only if, for every
	// check, Used + req.Amount ≤ limit, where Used counts committed holds,
	// arrears and active holds with ExpiresAt after req.Now in that counter,
	// and limit is the cap stored for the check's CapKey or else its Default
	// (no default: no cap). All or nothing.
	//
	// If a hold with req.Key exists, Reserve changes nothing and returns the
	// stored hold with replayed true — or ErrIdempotencyConflict when its
	// RequestHash differs from req.RequestHash. A replay is answered before
	// any cap check. If a cap would be exceeded Reserve returns a *CapError
	// for the first failing check in req.Checks order.
	//
	// The new hold counts against every counter in req.Checks.
	Reserve(ctx context.Context, req *ReserveRequest) (h Hold, replayed bool, err error)

	// Transition moves a hold from req.From to req.To by compare-and-set.
	// Allowed moves: active→committed, active→released, committed→reversed.
	//
	// An active hold whose ExpiresAt is not after req.Now is first marked
	// expired (EndedAt = ExpiresAt) and the call fails with ErrHoldExpired,
	// returning that hold. If the hold is already in req.To the call changes
	// nothing and returns the stored hold (a replay) — except a commit replay
	// with a different Actual, which fails with ErrIdempotencyConflict. A hold
	// in any other state fails with ErrHoldEnded (ErrHoldExpired if expired)
	// and is returned as stored. A commit whose Actual exceeds the held
	// Amount, or is negative, fails with ErrInvalidAmount and changes nothing.
	// Unknown ids fail with ErrHoldNotFound.
	//
	// On success the hold gets State req.To and EndedAt req.Now (for
	// committed→reversed, EndedAt keeps the commit time and Reason is set);
	// a commit sets Committed to req.Actual.
	Transition(ctx context.Context, req *TransitionRequest) (Hold, error)

	// Hold returns the hold with id as stored (an active hold may be past its
	// expiry: the Ledger applies Hold.At), or ErrHoldNotFound.
	Hold(ctx context.Context, id string) (Hold, error)

	// ApplyUsage records a usage report billed in arrears, adding its amount
	// to every counter in req.Counters, unconditionally: the money is already
	// spent, so caps do not refuse it. Idempotent by req.Key: if an entry
	// with that key exists nothing changes and the stored entry is returned
	// with replayed true, or ErrIdempotencyConflict when RequestHash differs.
	ApplyUsage(ctx context.Context, req *UsageRequest) (e UsageEntry, replayed bool, err error)

	// SetCap stores rec.Limit as the cap for rec.Key and appends rec to the
	// cap history, atomically, filling rec.Previous with the cap it replaced
	// (nil if none). It returns the record as stored.
	SetCap(ctx context.Context, rec CapRecord) (CapRecord, error)

	// CapHistory returns every cap change of project, oldest first.
	CapHistory(ctx context.Context, project string) ([]CapRecord, error)

	// Usage reports each check's counter at now, in order, with the limit
	// Reserve would apply.
	Usage(ctx context.Context, checks []CapCheck, now time.Time) ([]CounterUsage, error)

	// Windows returns every window of period in which the counter of
	// (project, provider) has recorded a hold or usage, oldest first, as
	// Usage would report it at now. Provider "" is the project-wide counter.
	Windows(ctx context.Context, project, provider string, period Period, now time.Time) ([]CounterUsage, error)

	// MarkAlert records key if absent and reports whether this call recorded
	// it. It is how an alert is delivered once across Ledger instances.
	MarkAlert(ctx context.Context, key string, at time.Time) (first bool, err error)
}

// CapCheck is one counter a reservation counts against and is checked on.
type CapCheck struct {
	Counter Counter
	// Default is the limit when no cap is stored for Counter.Cap(); nil
	// means no cap applies unless one is stored.
	Default *Money
}

// ReserveRequest is what Store.Reserve inserts.
type ReserveRequest struct {
	// HoldID is the id of the new hold, unique in the store. (The Ledger
	// leaves it empty only for the MemoryStore, which assigns its own.)
	HoldID  string
	Key     string
	Scope   Scope
	Service string
	Memo    string
	Amount  Money
	// Checks lists every counter the hold counts in (the scope's and the
	// project's, in each period), each with its default limit.
	Checks []CapCheck
	// Now is the reservation time (the hold's CreatedAt).
	Now       time.Time
	ExpiresAt time.Time
	// RequestHash fingerprints the request so that a key reused for a
	// different request is detected.
	RequestHash string
}

// TransitionRequest is a compare-and-set of a hold's state.
type TransitionRequest struct {
	HoldID string
	From   HoldState
	To     HoldState
	// Actual is the committed amount (commit only).
	Actual Money
	// Reason is recorded on reversal.
	Reason string
	Now    time.Time
}

// UsageRequest is a usage report for Store.ApplyUsage.
type UsageRequest struct {
	Key     string
	Scope   Scope
	Service string
	Amount  Money
	// At is when the usage happened; it picks the windows.
	At time.Time
	// Counters lists every counter the usage counts in.
	Counters    []Counter
	Now         time.Time
	RequestHash string
}

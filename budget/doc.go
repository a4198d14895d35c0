// Package budget enforces spending caps: the rule that binds payment in the
// agent provisioning protocol (PROTOCOL.md §6). Caps hold under concurrency,
// crashes and retries.
//
// # Roles
//
// Caps are the orchestrator's: it reserves money under the user's caps with
// a Ledger before it mints a payment token, and mints the token only against
// a granted hold, for at most the held amount. A provider enforces only the
// token's maximum amount. Agents spend within caps but never change them.
//
// # Model
//
// Money is an integer amount of minor units with an ISO 4217 currency. A
// Ledger has one currency (that of its default cap); any other is refused
// with ErrCurrencyMismatch, never converted.
//
// A reservation on a Scope (project, provider) counts against six counters:
// the provider's and the whole project's, each in the current week, month
// and year window of the Ledger's time zone. Any of them may carry a cap;
// by default the provider's month has $100 and nothing else is capped. All
// caps are checked in one atomic store step, so concurrent calls on several
// providers cannot together overspend the project. A per-call ceiling is
// checked before the store.
//
// A reservation grants a Hold, which moves through these states:
//
//	active ──commit(actual ≤ held)──▶ committed ──reverse──▶ reversed
//	   │ ──release──▶ released
//	   └ ──expiry (now ≥ ExpiresAt)──▶ expired
//
// An active hold counts its amount until it expires, with no sweeper: a hold
// counts only while the clock is before ExpiresAt. A committed hold counts the
// actual amount, the remainder returning at once. Every hold counts in the
// windows in which it was reserved. Usage billed in arrears (ReportUsage)
// counts too and is never refused; when it takes spend over a cap, the
// overrun is reported and alerted, and the cap refuses every new reservation
// in that window.
//
// Every operation is idempotent: a reservation by its idempotency key (the
// same key with a different request is ErrIdempotencyConflict), a commit,
// release or reverse by the hold's final state, a usage report by its key.
// Retrying after a timeout is always safe and never counts twice.
//
// Caps change only by SetCap from a user or an operator; agents get
// ErrNotAuthorized. Every change is kept in the cap history with who, when,
// the previous and the new limit. Lowering a cap below what is spent rewrites
// nothing and blocks new reservations.
//
// Alerts: after a commit or a usage report, each cap threshold (50, 80 and
// 100 % by default) crossed by the spend (committed plus arrears) of a
// counter is delivered once per counter and window through
// LedgerOptions.Alerts, even when several Ledgers share the store.
//
// # Stores
//
// The Ledger holds every invariant; a Store only offers atomic primitives:
// reserve-if-within-all-caps, compare-and-set of a hold's state, idempotent
// usage, put-if-absent of an alert mark. Library code never reads and then
// writes. MemoryStore is the default, sharded by project.
// [github.com/agentprov/agentprov/budget/sqlstore] stores in SQLite or
// PostgreSQL. Every Store passes the conformance suite
// [github.com/agentprov/agentprov/budget/budgettest].
//
// # Errors
//
// Errors are *Error values carrying a protocol code and an HTTP status, or a
// *CapError naming the counter, limit, use and request. Compare with
// errors.Is against the sentinels: ErrCapExceeded, ErrCallCeiling,
// ErrHoldNotFound, ErrHoldExpired, ErrHoldEnded, ErrCurrencyMismatch,
// ErrInvalidAmount, ErrInvalidRequest, ErrIdempotencyConflict,
// ErrNotAuthorized, ErrStore. Any store failure is ErrStore and fails
// closed: nothing is granted that the store did not confirm. Code maps any
// error to its wire code and status.
//
// # Concurrency
//
// Ledger, MemoryStore and the functions of the package are safe for
// concurrent use; the data types (Money, Scope, Hold, CapRecord…) are plain
// values, safe to copy and to share read-only. Several Ledgers, in one
// process or many, may share a durable Store; caps hold across all of them.
// Clocks are injected (LedgerOptions.Now), so tests control expiry and
// rollover exactly.
//
// # Assembly
//
// The orchestrator reserves before it mints (issuer.Issuer does this for
// it) and reads usage for its users:
//
//	ledger, _ := budget.NewLedger(budget.NewMemoryStore(nil), nil) // budget/sqlstore in production
//	hold, err := ledger.Reserve(ctx, budget.Scope{Project: "blog", Provider: "acme"}, budget.USD(250), "call-1", nil)
package budget

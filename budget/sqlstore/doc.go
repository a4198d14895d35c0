// Package sqlstore is a [budget.Store] on database/sql for SQLite (one
// embedded, persistent orchestrator) and PostgreSQL (many orchestrator
// instances sharing one database).
//
// The caller brings the driver and the *sql.DB; this package imports no
// driver, so a service that imports it inherits none. It has been tested
// with modernc.org/sqlite ("sqlite") and github.com/jackc/pgx/v5/stdlib
// ("pgx").
//
//	db, _ := sql.Open("pgx", "postgres://…")
//	store, err := sqlstore.New(ctx, db, sqlstore.Postgres, nil)
//	ledger, err := budget.NewLedger(store, nil)
//
// # Roles
//
// Orchestrator side only: the Ledger that enforces its users' spending caps
// keeps its holds, counters, caps, usage reports and alert marks here.
//
// # Stores
//
// [New] creates the tables if they do not exist (every instance may call it
// at start-up) under a configurable prefix. Amounts are BIGINT minor units;
// times are BIGINT nanoseconds since the Unix epoch, so they compare exactly
// in every dialect.
//
// On PostgreSQL every contract step is a single statement at READ
// COMMITTED: a reservation raises every counter it counts in (the
// provider's and the project's, in each period) by one INSERT … ON CONFLICT
// DO UPDATE … WHERE used + amount ≤ limit, taking the counter rows' locks in
// one fixed order, and inserts the hold in the same statement, which aborts
// as a whole when any counter refused. Holds that expired are reclaimed
// lazily, only when a reservation would otherwise be refused and when usage
// is read. A waiting statement re-checks its condition against the row as
// the statement it waited for left it, so a hot scope serialises on its
// counter rows without serialization failures or retries. See
// PROTOCOL.md, Appendix B, for the statements and CockroachDB notes.
//
// On SQLite every step is one BEGIN IMMEDIATE transaction on a single
// connection; open the database with [SQLiteDSN] and SetMaxOpenConns(1).
// Both dialects keep full durability: a call returns only after its commit
// is on disk (PostgreSQL synchronous_commit as configured, normally on;
// SQLite WAL with synchronous=FULL).
//
// The store passes the conformance suite
// [github.com/agentprov/agentprov/budget/budgettest] on both dialects.
//
// # Retention
//
// Nothing is deleted on its own: ended holds, usage entries and alert marks
// are idempotency and audit records, and they accumulate until the
// operator calls [Store.Purge] (for example daily, with a cutoff
// [RecommendedPurgeAge] ago). Counters hold sums, not derivations of those
// rows, so a purge changes no usage or remaining amount; it never deletes an
// active hold (even one expired but not yet reclaimed) nor the alert mark
// of a window still open. It deletes at most 1,000 rows per statement in
// short transactions, so it can run beside live traffic on PostgreSQL.
// What it deletes stops being idempotent: a replayed key of a purged hold
// or usage entry is taken as new, and a purged committed hold can no longer
// be reversed. The cutoff must therefore be older than every retry window
// callers rely on; Purge refuses one later than [MinPurgeAge] before now
// with a [*CutoffError] (errors.Is [ErrCutoffTooRecent]).
//
// # Errors
//
// Contract outcomes are the budget package's errors (*budget.CapError,
// budget.ErrIdempotencyConflict, budget.ErrHoldNotFound, …). Every other
// error is a database failure, wrapped with the operation that failed; the
// Ledger reports it as budget.ErrStore and grants nothing.
//
// # Concurrency
//
// A Store is safe for concurrent use, and any number of Stores, in any
// number of processes, may share one PostgreSQL database.
package sqlstore

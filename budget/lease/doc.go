// Package lease lets many orchestrator instances reserve against one hot
// spend cap without serializing on one database row: each instance leases
// a slice of the cap from the shared budget.Store and grants holds from it
// at memory speed, journaling every grant and commit before reporting it.
//
// # Roles
//
// A Pool is one instance's view. A lease is an ordinary hold in the shared
// store (all caps checked atomically, idempotent by key, bounded, expiring),
// so live leases never sum over a cap. Sub-holds are granted from the
// current lease under a mutex; a reservation larger than the slice, or that
// no new lease can fit, goes to the shared store directly. A lease is
// settled (its hold committed for exactly the sum of its committed
// sub-holds, the rest returning to the caps) once retired and idle, or
// Margin before it expires, or at Close.
//
// # Stores
//
// Any budget.Store is shared; a Journal (FileJournal: append with
// group-commit fsync; MemoryJournal for tests) is per instance.
//
// # Errors
//
// Errors are *budget.Error values as the budget package returns them. A
// journal that cannot sync fails closed: ErrStore, nothing granted.
//
// # Concurrency
//
// Pool and FileJournal are safe for concurrent use. One journal belongs to
// one running Pool; Recover runs on a journal only while no Pool uses it.
//
// # Proof sketch
//
// Claim: at every instant, including after kill -9 at any point, the spend
// that was reported committed (direct holds plus sub-hold commits) is at
// most the cap, provided every lease is settled before it expires.
//
//  1. Each lease L of amount A_L is a shared-store hold, so Σ over live
//     leases of A_L plus everything else the store counts is ≤ cap.
//  2. Within L, a sub-hold is granted only while used_L + amount ≤ A_L
//     (under the Pool's mutex), and a commit only lowers used_L; so the
//     commits C_L of L satisfy C_L ≤ A_L.
//  3. A commit is reported only after its journal record is durable; so
//     after a crash, the journal holds every reported commit of L, and
//     Recover (deduplicating by sub-hold id) computes C'_L ≥ C_L, still
//     ≤ A_L since every journaled record was granted under step 2.
//  4. Settling commits L's hold for C_L (Commit is idempotent: a crash
//     during settlement recomputes the same sum). Until then L counts
//     A_L ≥ C_L; after, it counts C_L. Either way the store counts at
//     least the reported spend of L, and the store keeps its total ≤ cap.
//  5. A lease never grants a sub-hold that outlives its expiry minus
//     Margin, and settlement runs from then on; if it does not happen in
//     time (the instance is down and nobody ran Recover), the hold expires
//     and counts nothing: that is the one window where reported spend can
//     exceed the cap. Late settlement then records C_L as usage in
//     arrears, so the books lose nothing and the overrun is reported.
//
// The design asked for an expired lease to return only its uncommitted
// part; the budget.Store contract cannot express that (an expired hold
// counts nothing), hence the precondition in the claim, long lease TTLs,
// and recovery on restart.
package lease

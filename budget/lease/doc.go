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
// sub-holds, the rest returning to the caps) once it is replaced and has
// no sub-hold open, once it has granted nothing for IdleAfter with none
// open (so an instance that stopped using a scope does not pin room other
// instances need), Margin before it expires, or at Close.
//
// # Stores
//
// Any budget.Store is shared; a Journal (FileJournal: append with
// group-commit fsync; MemoryJournal for tests) is per instance; a Journal of
// your own passes the conformance suite leasetest.RunJournal. A journal
// that implements Compacter (both do) is compacted by its Pool after
// recovery and after every Options.CompactAfter settled leases: the
// records of settled leases, which recovery skips, are dropped, so the
// journal holds about what is live. FileJournal compacts beside live
// appends (they pause only while the tail written meanwhile is copied and
// the new file renamed into place).
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
//     Margin, and settlement runs from then on (by the settler, by Close,
//     or by recovery: New recovers its journal before it serves). Only if
//     none of these gets through for all of Margin (the instance is down
//     and nobody ran Recover on its journal, or the store is unreachable)
//     does the hold expire and count nothing: that is the one window where
//     reported spend can exceed the cap, by at most C_L. Late settlement
//     then records C_L as usage in arrears, so the books lose nothing and
//     the overrun is reported.
//
// # Crashes and expiry
//
// The design asked for an expired lease to return only its uncommitted
// part; the budget.Store contract cannot express that (an expired hold
// counts nothing), hence the precondition in the claim. The defaults make
// it hard to miss: a lease lives 6 hours (DefaultLeaseTTL), grants for at
// most its first 55 minutes and is settled at the latest 5 hours before it
// expires (DefaultMargin), so a crashed instance that restarts within 5
// hours settles every lease it left in time, on restart and before it
// grants anything. The trade-off is under-spend: until it is recovered, a
// dead instance's leases count their full amounts (at most a few slices
// per scope it used), so other instances may be refused for room that
// nothing will spend. An instance that never comes back pins its slices
// until its leases expire, and when they do, the window of step 5 opens
// for their commits; so its journal should be on storage from which an
// operator or another instance can run Recover within Margin, which ends
// the pin and keeps the claim. Lowering Margin frees such slices sooner and
// shortens the time a crash may last without risk; never overspend costs
// exactly this under-spend.
package lease

// Package payment implements Payment (§5) of the agent provisioning
// protocol: payment tokens minted against budget holds and redeemed exactly
// once, settlement through a Rail with an outbox, the idempotency rules of
// state-changing endpoints, signed receipts, and the HTTP 402 "Payment"
// authentication scheme.
//
// # Roles
//
// Orchestrator side: an Issuer mints tokens (Issuer.Mint), serves the
// redemption endpoint (Issuer.RedemptionHandler), settles committed
// redemptions on a Rail and retries what is unconfirmed (Issuer.SettlePending,
// Settler), and revokes unredeemed tokens (Issuer.Revoke). Issuer.JWKS is
// what providers and users verify tokens and receipts with.
//
// Provider side: a TokenVerifier checks a token locally (signature, typ
// agentprov-payment+jwt, iss, aud = this provider, exp) before doing paid
// work; a Redeemer redeems it at the orchestrator for the actual amount
// with an Idempotency-Key and gets a Receipt, verifiable with VerifyReceipt.
//
// A token is a JWT naming one provider as audience, the service ref, the
// project, a maximum amount and currency, an expiry, and the budget hold as
// its single-use identifier (jti). It carries no card data. The lifecycle
// of one token is a Redemption record:
//
//	issued → pending → committed → settling → settled
//	                                   └→ refused → reversed
//	issued → revoking → revoked   (revoked, or expired unredeemed)
//	pending → void                (hold ended before the commit)
//
// Redemption is the hold's commit (budget.Ledger.Commit) and happens
// exactly once: the record moves only by compare-and-set, every side effect
// (commit, charge, reverse, release) is idempotent and keyed by the hold
// id, and whoever finds a record stuck after a crash repeats the step. The
// Rail is called with the hold id as its idempotency key, so a charge that
// timed out but went through is found, not repeated.
//
// # Stores
//
// RedemptionStore (put-if-absent Create, compare-and-set Update, Due) and
// IdempotencyStore (put-if-absent Begin, compare-and-set Complete, Abandon)
// are small interfaces of atomic operations; MemoryRedemptionStore and
// MemoryIdempotencyStore are the in-process implementations, package
// payment/sqlstore the SQLite/PostgreSQL ones, and package paymenttest the
// conformance suites every implementation passes. Budget holds go through
// the Holds interface, which *budget.Ledger satisfies.
//
// # Errors
//
// Every protocol failure is an *Error with a Code (the problem+json "code")
// and an HTTP Status; errors.Is compares by code, so
// errors.Is(err, ErrTokenExpired) works on errors that came back over HTTP
// through a Redeemer. Budget refusals keep the budget error as the cause
// (errors.As(err, new(*budget.CapError))).
//
// # Concurrency
//
// Issuer, Settler, TokenVerifier, Redeemer, MemoryRail, the memory stores
// and the handlers are safe for concurrent use. Several Issuers sharing the
// same stores, ledger and rail behave as one.
//
// # HTTP 402
//
// (Placeholder: the Payment authentication scheme — challenges, the
// Paywall middleware and the client Transport — is documented here by its
// author.)
package payment

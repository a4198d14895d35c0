// Package payment implements the wire formats of Payment (§5) of the agent
// provisioning protocol, shared by every role: payment tokens and their
// verification, signed receipts, the redemption and release requests, the
// HTTP 402 "Payment" authentication scheme (challenge, credential,
// Payment-Receipt header), the session authorization of metered calls,
// the idempotency rules of state-changing endpoints, and the errors. It
// also holds the agent's client, Transport, which pays 402 answers.
//
// # Roles
//
// Each role has its own package; this one is what they share:
//
//   - Orchestrator: package payment/issuer. An issuer.Issuer mints tokens
//     against budget holds (Mint), serves the redemption endpoint
//     (RedemptionHandler), settles committed redemptions on an
//     issuer.Rail and retries what is unconfirmed (SettlePending,
//     issuer.Settler), and revokes unredeemed tokens (Revoke). Its JWKS is
//     what providers and users verify tokens and receipts with.
//   - Provider: package payment/paywall. A TokenVerifier (this package)
//     checks a token locally (signature, typ agentprov-payment+jwt, iss,
//     aud = this provider, exp) before doing paid work; a paywall.Redeemer
//     redeems it at the orchestrator for the actual amount with an
//     Idempotency-Key and gets a Receipt, verifiable with VerifyReceipt,
//     or, when the work failed, releases it (Redeemer.Release, served by
//     Issuer.Release) so that the user's hold ends at once. A
//     paywall.Paywall sells single calls over HTTP 402.
//   - Agent: this package. A Transport pays a 402 answer with a token its
//     Payer obtains (issuer.IssuerPayer mints one in process).
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
// Redemption (an issuer.Redemption record, whose states are
// RedemptionState) is the hold's commit (budget.Ledger.Commit) and happens
// exactly once: the record moves only by compare-and-set, every side effect
// (commit, charge, reverse, release) is idempotent and keyed by the hold
// id, and whoever finds a record stuck after a crash repeats the step. The
// Rail is called with the hold id as its idempotency key, so a charge that
// timed out but went through is found, not repeated.
//
// # Stores
//
// IdempotencyStore (put-if-absent Begin, compare-and-set Complete,
// Abandon) is a small interface of atomic operations, and so are the role
// packages' stores: issuer.RedemptionStore on the orchestrator side,
// paywall.ChallengeStore and paywall.SessionStore on the provider side.
// MemoryIdempotencyStore and the role packages' Memory… stores are the
// in-process implementations, package payment/sqlstore the
// SQLite/PostgreSQL ones (sqlstore.Store, sqlstore.ChallengeStore,
// sqlstore.SessionStore), and package paymenttest the conformance suites
// every implementation passes.
//
// # Errors
//
// Every protocol failure is an *Error with a Code (the problem+json "code")
// and an HTTP Status; errors.Is compares by code, so
// errors.Is(err, ErrTokenExpired) works on errors that came back over HTTP
// through a paywall.Redeemer. Budget refusals keep the budget error as the cause
// (errors.As(err, new(*budget.CapError))).
//
// # Concurrency
//
// TokenVerifier, Transport, MemoryIdempotencyStore and the Idempotent
// handlers are safe for concurrent use (the role packages say so of
// theirs). Plain data types (TokenClaims, Receipt, StoredResponse,
// ChallengeRequest, the option structs) are values: share them read-only
// or copy them; options are read once by their constructor.
//
// # HTTP 402
//
// A provider can also sell single API calls. A paid call uses the HTTP
// "Payment" authentication scheme with this package's payment method,
// "agentprov": the 402 answer's WWW-Authenticate challenge states the
// price, and the retried request's Authorization credential carries a
// payment token for it (§5.7).
//
// Provider side (package payment/paywall): paywall.NewPaywall(realm,
// secrets, verifier, redeemer, opts).Require(service, price) is middleware. A request without a credential
// is answered 402 with a fresh challenge whose id is an HMAC over every
// parameter it carries (price, recipient, route, Idempotency-Key, body
// digest, expiry, and a random nonce that makes every challenge unique),
// so a client can change none of them. A request with a credential has
// its echoed challenge checked against that HMAC and against the request
// in hand, then its token verified locally (exp, nbf, iat) and required
// to name that challenge in challenge_id; the token (its iss and jti,
// paywall.TokenClaimKey) is then claimed exactly once in the
// paywall.ChallengeStore,
// shared by all instances of the provider, so one token pays for one call
// whatever challenge it is shown on. Only then does the handler run, with
// its response held back: a 2xx is redeemed at the orchestrator (key
// "402:" + the token's jti) and delivered with a Payment-Receipt header; any
// other answer is delivered as is, nothing is charged, and the token's
// hold is released at once through the redeemer's Release
// (paywall.PaywallOptions.KeepHoldOnFailure turns that off). A retry with the same
// credential gets the recorded outcome, never a second run or charge.
//
// Client side: NewTransport(payer, origins, maxPerCall, opts) is an
// http.RoundTripper. On a 402 with an agentprov challenge it checks that
// the challenge comes from an origin it is configured to pay and names
// that origin's provider, refuses a price above its per-call ceiling
// before anything is paid, asks its Payer for a token (issuer.IssuerPayer mints
// one in process; an agent would ask its orchestrator), and sends the
// request again with the credential, replaying the body. When that
// attempt times out or the provider answers "in flight", it sends the same
// credential again rather than paying anew, so one logical request costs
// at most one payment. A 402 of another scheme or method is handed back
// untouched.
//
// # Assembly
//
// An agent pays through a Transport; its Payer asks the orchestrator for
// tokens (here an issuer.Issuer in the same process, see examples/embed):
//
//	tr, _ := payment.NewTransport(issuer.IssuerPayer(iss, "blog"),
//		map[string]string{"https://api.acme.example": "acme"}, budget.USD(500), nil)
//	client := &http.Client{Transport: tr}
//
// Package payment/issuer shows the orchestrator's assembly, package
// payment/paywall the provider's.
//
// # Metered sessions
//
// For repeated calls to one paid API, paywall.Paywall.RequireMetered also
// offers a "session" challenge (§5.9): the payer's orchestrator reserves
// one hold for a session maximum and mints one token
// (issuer.IssuerSessionPayer), each call carries an HMAC authorization
// (SessionCall, SessionMAC) under a session key the provider derives from
// a secret shared with the orchestrator (SessionKey), and the provider
// checks it locally and consumes the call atomically in its
// paywall.SessionStore before serving (paywall.MemorySessionStore, or the
// durable sqlstore.SessionStore that survives restarts and is shared by a
// provider's instances; paymenttest.RunSessionStore is the suite every
// store passes). Paywall.SettleSessions redeems each ended session once
// for its consumed total; the rest of the hold is released. A Transport
// whose payer is a SessionPayer uses sessions where they are offered,
// without changes to the calling code.
package payment

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
// with an Idempotency-Key and gets a Receipt, verifiable with VerifyReceipt,
// or, when the work failed, releases it (Redeemer.Release, served by
// Issuer.Release) so that the user's hold ends at once.
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
// RedemptionStore (put-if-absent Create, compare-and-set Update, Due),
// IdempotencyStore (put-if-absent Begin, compare-and-set Complete, Abandon)
// and, on the provider side, ChallengeStore (put-if-absent Claim,
// compare-and-set Update) are small interfaces of atomic operations;
// MemoryRedemptionStore, MemoryIdempotencyStore and MemoryChallengeStore
// are the in-process implementations, package payment/sqlstore the
// SQLite/PostgreSQL ones (sqlstore.Store, sqlstore.ChallengeStore), and
// package paymenttest the conformance suites every implementation passes. Budget holds go through
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
// Issuer, Settler, TokenVerifier, Redeemer, Paywall, Transport,
// MemoryRail, the memory stores and the handlers are safe for concurrent
// use. Several Issuers sharing the
// same stores, ledger and rail behave as one. Plain data types
// (TokenClaims, Receipt, Redemption, ChallengeRecord, StoredResponse,
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
// Provider side: NewPaywall(realm, secrets, verifier, redeemer, opts)
// .Require(service, price) is middleware. A request without a credential
// is answered 402 with a fresh challenge whose id is an HMAC over every
// parameter it carries (price, recipient, route, Idempotency-Key, body
// digest, expiry, and a random nonce that makes every challenge unique),
// so a client can change none of them. A request with a credential has
// its echoed challenge checked against that HMAC and against the request
// in hand, then its token verified locally (exp, nbf, iat) and required
// to name that challenge in challenge_id; the token (its iss and jti,
// TokenClaimKey) is then claimed exactly once in the ChallengeStore,
// shared by all instances of the provider, so one token pays for one call
// whatever challenge it is shown on. Only then does the handler run, with
// its response held back: a 2xx is redeemed at the orchestrator (key
// "402:" + the token's jti) and delivered with a Payment-Receipt header; any
// other answer is delivered as is, nothing is charged, and the token's
// hold is released at once through the redeemer's Release
// (PaywallOptions.KeepHoldOnFailure turns that off). A retry with the same
// credential gets the recorded outcome, never a second run or charge.
//
// Client side: NewTransport(payer, origins, maxPerCall, opts) is an
// http.RoundTripper. On a 402 with an agentprov challenge it checks that
// the challenge comes from an origin it is configured to pay and names
// that origin's provider, refuses a price above its per-call ceiling
// before anything is paid, asks its Payer for a token (IssuerPayer mints
// one in process; an agent would ask its orchestrator), and sends the
// request again with the credential, replaying the body. When that
// attempt times out or the provider answers "in flight", it sends the same
// credential again rather than paying anew, so one logical request costs
// at most one payment. A 402 of another scheme or method is handed back
// untouched.
//
// # Assembly
//
// The orchestrator (see examples/embed, Example_buy):
//
//	ledger, _ := budget.NewLedger(budget.NewMemoryStore(nil), nil)
//	issuer, _ := payment.NewIssuer(orch, key, ledger, &payment.IssuerOptions{Rail: rail,
//		Authenticate: payment.BearerAuthenticator(map[string]string{"acme": apiKey})})
//	mux.Handle("/redeem", issuer.RedemptionHandler())
//	tr, _ := payment.NewTransport(payment.IssuerPayer(issuer, "blog"),
//		map[string]string{"https://api.acme.example": "acme"}, budget.USD(500), nil)
//
// The provider gives its Paywall to agentprov.ProviderOptions and wraps paid
// routes in Provider.Paid or Provider.Charged, or uses it alone:
//
//	verifier, _ := payment.NewTokenVerifier(orch, "acme", orchJWKS, nil)
//	redeemer, _ := payment.NewRedeemer(orch+"/redeem", &payment.RedeemerOptions{APIKey: apiKey})
//	paywall, _ := payment.NewPaywall("api.acme.example", [][]byte{secret}, verifier, redeemer, nil)
//	mux.Handle("GET /check", paywall.Require("acme/dns", budget.USD(250))(check))
//
// # Metered sessions
//
// For repeated calls to one paid API, Paywall.RequireMetered also offers a
// "session" challenge (§5.9): the payer's orchestrator reserves one hold
// for a session maximum and mints one token (IssuerSessionPayer), each
// call carries an HMAC authorization under a session key the provider
// derives from a secret shared with the orchestrator (SessionKey), and the
// provider checks it locally and consumes the call atomically in its
// SessionStore before serving (MemorySessionStore, or the durable
// payment/sqlstore.SessionStore that survives restarts and is shared by a
// provider's instances; paymenttest.RunSessionStore is the suite every
// store passes). Paywall.SettleSessions
// redeems each ended session once for its consumed total; the rest of the
// hold is released. A Transport whose payer is a SessionPayer uses
// sessions where they are offered, without changes to the calling code.
package payment

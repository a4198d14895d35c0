// Package paywall is the provider's side of Payment (§5) of the agent
// provisioning protocol: a Paywall sells single API calls over HTTP 402
// (Paywall.Require, the "Payment" authentication scheme with the
// "agentprov" method, §5.7) and metered sessions (Paywall.RequireMetered,
// §5.9), and a Redeemer redeems the payment tokens it accepted at the
// orchestrator for the actual amount, or releases them when the work
// failed (Redeemer.Redeem, Redeemer.Release).
//
// A request without a credential is answered 402 with a fresh challenge
// whose id is an HMAC over every parameter it carries; a request with a
// credential has its echoed challenge and its token checked locally
// (payment.TokenVerifier), the token claimed exactly once in the
// ChallengeStore, and only then does the handler run, with its response
// held back: a 2xx is redeemed and delivered with a Payment-Receipt
// header, any other answer is delivered as is and the token's hold
// released. A retry with the same credential gets the recorded outcome.
//
// The wire formats are package payment's; the orchestrator's side is
// package payment/issuer.
//
// # Roles
//
// Provider only: a service that sells API calls mounts the Paywall in front
// of its handlers and redeems through the Redeemer. Nothing here is needed
// by an orchestrator or an agent, which use packages payment/issuer and
// payment.
//
// # Assembly
//
// A provider selling GET /check for $2.50 a call (see examples/provider):
//
//	verifier, _ := payment.NewTokenVerifier(orch, "acme", orchJWKS, nil)
//	redeemer, _ := paywall.NewRedeemer(orch+"/redeem", &paywall.RedeemerOptions{APIKey: apiKey})
//	pw, _ := paywall.NewPaywall("api.acme.example", [][]byte{secret}, verifier, redeemer, nil)
//	mux.Handle("GET /check", pw.Require("acme/dns", budget.USD(250))(check))
//
// agentprov.ProviderOptions takes the Paywall too; Provider.Paid and
// Provider.Charged then wrap paid routes.
//
// # Stores
//
// ChallengeStore (put-if-absent Claim, compare-and-set Update) and
// SessionStore (Open, Consume, Finish, Close, Settle, Due) are small
// interfaces of atomic operations, shared by all instances of a provider;
// MemoryChallengeStore and MemorySessionStore are the in-process
// implementations, package payment/sqlstore the SQLite and PostgreSQL ones
// (sqlstore.ChallengeStore, sqlstore.SessionStore), and
// paymenttest.RunChallengeStore and paymenttest.RunSessionStore the
// conformance suites. SessionRecord's Apply methods hold the session rules
// every SessionStore applies.
//
// # Errors
//
// Failures are *payment.Error values, compared with errors.Is by code;
// errors that came back from the orchestrator through a Redeemer keep
// their code (errors.Is(err, payment.ErrTokenExpired) works).
//
// # Concurrency
//
// Paywall, Redeemer and the memory stores are safe for concurrent use.
// ChallengeRecord, SessionRecord, Paid and the option structs are plain
// values; options are read once by their constructor.
package paywall

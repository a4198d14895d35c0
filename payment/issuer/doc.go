// Package issuer is the orchestrator's side of Payment (§5) of the agent
// provisioning protocol: an Issuer mints payment tokens against budget
// holds (Issuer.Mint), serves the redemption endpoint providers redeem and
// release them at (Issuer.RedemptionHandler), settles committed
// redemptions on a Rail and retries what is unconfirmed
// (Issuer.SettlePending, Settler), and revokes unredeemed tokens
// (Issuer.Revoke). Issuer.JWKS is what providers and users verify tokens
// and receipts with. IssuerPayer and IssuerSessionPayer let an agent's
// payment.Transport in the same process pay with the Issuer's tokens.
//
// The wire formats (tokens, receipts, the 402 challenge and credential,
// the redemption request) are package payment's; the provider's side is
// package payment/paywall.
//
// # Roles
//
// Orchestrator only: the platform that holds its users' payment methods and
// caps runs the Issuer. Providers talk to it over the redemption endpoint,
// never by importing this package; an agent in the orchestrator's process
// pays through IssuerPayer or IssuerSessionPayer.
//
// # Assembly
//
// An orchestrator with an in-memory ledger and rail (see examples/embed):
//
//	ledger, _ := budget.NewLedger(budget.NewMemoryStore(nil), nil)
//	iss, _ := issuer.NewIssuer(orch, key, ledger, &issuer.IssuerOptions{Rail: rail,
//		Authenticate: issuer.BearerAuthenticator(map[string]string{"acme": apiKey})})
//	mux.Handle("/redeem", iss.RedemptionHandler())
//	settler, _ := issuer.NewSettler(iss, nil)
//	go settler.Run(ctx) // retries unconfirmed charges until ctx ends
//	tr, _ := payment.NewTransport(issuer.IssuerPayer(iss, "blog"),
//		map[string]string{"https://api.acme.example": "acme"}, budget.USD(500), nil)
//
// # Stores
//
// RedemptionStore (put-if-absent Create, compare-and-set Update, Due) is a
// small interface of atomic operations; MemoryRedemptionStore is the
// in-process implementation, package payment/sqlstore the SQLite and
// PostgreSQL one (sqlstore.Store), and paymenttest.RunRedemptionStore the conformance
// suite every implementation passes. Budget holds go through the Holds
// interface, which *budget.Ledger satisfies.
//
// # Errors
//
// Failures are *payment.Error values; compare them with errors.Is against
// the payment.Err… sentinels. Budget refusals keep the budget error as the
// cause (errors.As(err, new(*budget.CapError))).
//
// # Concurrency
//
// Issuer, Settler, MemoryRail, MemoryRedemptionStore and the handlers are
// safe for concurrent use. Several Issuers sharing the same stores, ledger
// and rail behave as one. Redemption, MintRequest, Minted and the option
// structs are plain values; options are read once by their constructor.
package issuer

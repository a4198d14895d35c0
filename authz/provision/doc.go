// Package provision is the provider side of the Authorization component
// (PROTOCOL §4): a provider uses it to turn an orchestrator's identity
// attestation into an account and an API token, to link existing accounts
// with the user's consent, to guard its own API with those tokens, and to
// receive revocation events. Attestations are verified by an
// [authz.Verifier]; the orchestrator side is package authz/vault.
//
// # Roles
//
// [Provisioner] is the OAuth token endpoint at which an orchestrator trades
// a verified attestation for an API token, using the RFC 7523 JWT-bearer
// grant. An identity the provider has never seen, with a verified email and
// a human's consent receipt for the current terms, gets an account created
// atomically ([AccountStore.CreateIfAbsent]) and link_action "created". An
// email that already belongs to an account is never linked on the match
// alone: the answer is 401 consent_required with an RFC 9728
// resource_metadata challenge, and the account holder approves the link
// through the device flow (RFC 8628, [Provisioner.ApproveDevice], with the
// approval page of [NewDevicePage]) or the authorization code flow with S256
// PKCE (an [Authorizer]). Linking is a compare-and-set
// ([AccountStore.LinkSubject]) and answers link_action "linked_existing".
//
// The Provisioner also serves the RFC 9728 and RFC 8414 metadata, RFC 7009
// token revocation and signed revocation events
// ([Provisioner.RevocationEventHandler], [Provisioner.HandleRevocation]).
// Its [Provisioner.Middleware] guards the provider's own API with bearer
// tokens stored only as hashes in a [TokenStore]; handlers read the caller
// with [IdentityFromContext].
//
// # Stores
//
// State lives behind small interfaces whose methods are single atomic
// steps: [AccountStore] (create-if-absent, link by compare-and-set),
// [TokenStore] and [GrantStore] (codes of linking flows in progress, so
// several provider instances can share one flow), with in-memory
// implementations here and SQL ones for SQLite and PostgreSQL in package
// authz/sqlstore. Package authz/authztest holds the conformance suites
// every implementation passes.
//
// # Errors
//
// Failures are [*authz.Error] values matched with errors.Is by code. The
// OAuth codes both roles read (invalid_grant, consent_required,
// authorization_pending, invalid_token…) are sentinels of package authz;
// the codes only a provider answers, such as [ErrInvalidRevocation] or
// [ErrUnknownUserCode], are here. Store contract errors ([ErrTokenNotFound],
// [ErrAccountNotFound]…) are plain sentinels the conformance suites check.
//
// # Concurrency
//
// The Provisioner, its handlers and middleware, and the stores are safe for
// concurrent use. Plain data types (Account, IssuedToken, Grant, Identity,
// the option structs) are values: share them read-only or copy them.
//
// # Assembly
//
// A provider trusts its orchestrators' keys, builds a Provisioner over its
// stores and mounts its endpoints next to its API (or hands it to
// agentprov.NewProvider, which mounts everything under one base URL):
//
//	verifier, _ := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: orch, JWKSURL: orch + "/.well-known/jwks.json"}},
//		authz.NewMemoryReplayStore(nil), nil)
//	prov, _ := provision.NewProvisioner(verifier, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(),
//		&provision.ProvisionerOptions{Issuer: base, TermsVersion: "2026-04", TermsURL: terms})
//	mux.Handle("/", prov.Handler()) // token, device, revocation, well-known
//	mux.Handle("GET /v1/zones", prov.Middleware("zones:read")(zones))
package provision

// Package authz is the Authorization component of the agent provisioning
// protocol (PROTOCOL §4): how an orchestrator vouches for its user to a
// provider, how the provider turns that into an account and credentials,
// and how the orchestrator keeps those credentials.
//
// This package holds what both roles share: the token formats, their
// signing and verification, keys and JWKS, the discovery documents and the
// wire types of the OAuth endpoints. Each role has its own package on top:
//
//   - package authz/provision is the provider side: the Provisioner (token,
//     device, authorization and revocation endpoints), its account, token
//     and grant stores, and the bearer-token middleware;
//   - package authz/vault is the orchestrator side: the credential Vault and
//     its stores, the VaultTransport, the Linker that provisions or links
//     accounts, and the Revoker that sends revocation events.
//
// Both import authz; neither imports the other.
//
// # Roles
//
// Orchestrator side:
//
//   - [Attester] signs identity attestations (JWT, typ
//     agentprov-attestation+jwt) naming the user (a pairwise subject, see
//     [PairwiseSubject]), their email, the acting agent (RFC 8693 "act"),
//     the project and the service ref. It also signs consent receipts
//     ([Attester.SignConsent], typ agentprov-consent+jwt) that record a
//     human's acceptance of a provider's terms — never the agent's alone —
//     and any other typed event through [Attester.Sign]. Its keys (EdDSA or
//     ES256, in memory or behind a crypto.Signer such as a KMS) are published
//     by [Attester.JWKSHandler] and rotated with AddKey, SetActiveKey and
//     RemoveKey.
//   - Clients discover linking endpoints with [ParseWWWAuthenticate],
//     [FetchResourceMetadata] and [FetchServerMetadata].
//
// Provider side:
//
//   - [Verifier] checks attestations, consent receipts and typed events
//     against a list of [TrustedIssuer]s: size limit first, then algorithm
//     allow-list, header, typ, issuer, key, signature, audience, times, and
//     last the single use of the "jti" through a [ReplayStore].
//     [Verifier.VerifyTypedFunc] lets a receiver refuse an event's content
//     before its jti is spent.
//   - [KeySet] fetches and caches an orchestrator's JWKS, refetching on an
//     unknown kid at a bounded rate so that key rotation is picked up
//     without letting made-up kids cause a fetch storm.
//
// Wire types both sides read: [TokenResponse], [DeviceAuthorizationResponse],
// [RevocationEvent] and [RevocationAck], [TokenHash], the grant types
// ([GrantTypeJWTBearer], [GrantTypeDeviceCode]), the link actions and the
// RFC 6749, RFC 6750 and RFC 8628 error codes.
//
// # Stores
//
// The one store of this package is the [ReplayStore] (put-if-absent with
// expiry), with an in-memory implementation here and a SQL one for SQLite
// and PostgreSQL in package authz/sqlstore, which also implements the role
// packages' stores. Package authz/authztest holds the conformance suites
// every implementation passes.
//
// # Errors
//
// Every protocol failure is an [*Error] with a stable snake_case Code and
// an HTTP status; errors.Is matches by code against the sentinels, such as
// [ErrTokenExpired] or [ErrWrongTokenType]. The role packages define their
// own sentinels with the same type. Detail is safe to send in a
// problem+json body; the internal cause (Err) is not.
//
// # Concurrency
//
// Every exported type with methods that act (Attester, Verifier, KeySet and
// the replay stores) is safe for concurrent use. Plain data types
// (Attestation, ConsentReceipt, the wire responses, the option structs) are
// values: share them read-only or copy them. Attesters rotate keys while
// signing; KeySets coalesce concurrent fetches.
//
// # Assembly
//
// A provider builds a Verifier that trusts its orchestrators and hands it to
// provision.NewProvisioner:
//
//	verifier, _ := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: orch, JWKSURL: orch + "/.well-known/jwks.json"}},
//		authz.NewMemoryReplayStore(nil), nil)
//
// An orchestrator signs with an Attester, serves Attester.JWKSHandler, and
// hands the Attester to vault.NewLinker and vault.NewRevoker:
//
//	key, _ := authz.GenerateSigningKey("orch-2026", jose.EdDSA)
//	attester, _ := authz.NewAttester(orch, key, nil)
//	mux.Handle("GET /.well-known/jwks.json", attester.JWKSHandler())
package authz

// Package authz is the Authorization component of the agent provisioning
// protocol (PROTOCOL §4): how an orchestrator vouches for its user to a
// provider, how the provider turns that into an account and credentials,
// and how the orchestrator keeps those credentials.
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
//   - [Vault] keeps the credentials providers return, per project and
//     service ref, over a [VaultStore]; [EncryptedVaultStore] seals records
//     with AES-256-GCM so that any store, SQL included, holds ciphertext.
//     [Secret] values never print, marshal or log. [Vault.TokenSource] and
//     [Vault.Env] hand a credential to the code that needs it.
//
// Provider side:
//
//   - [Verifier] checks attestations, consent receipts and typed events
//     against a list of [TrustedIssuer]s: size limit first, then algorithm
//     allow-list, header, typ, issuer, key, signature, audience, times, and
//     last the single use of the "jti" through a [ReplayStore].
//   - [KeySet] fetches and caches an orchestrator's JWKS, refetching on an
//     unknown kid at a bounded rate so that key rotation is picked up
//     without letting made-up kids cause a fetch storm.
//
// Provisioning, provider side: [Provisioner] is the OAuth token endpoint at
// which an orchestrator trades a verified attestation for an API token, using
// the RFC 7523 JWT-bearer grant. An identity the provider has never seen, with
// a verified email and a human's consent receipt for the current terms,
// gets an account created atomically ([AccountStore.CreateIfAbsent]) and
// link_action "created". An email that already belongs to an account is never
// linked on the match alone: the answer is 401 consent_required with an
// RFC 9728 resource_metadata challenge, and the account holder approves the
// link through the device flow (RFC 8628, [Provisioner.ApproveDevice]) or the
// authorization code flow with S256 PKCE (an [Authorizer]). Linking is a
// compare-and-set ([AccountStore.LinkSubject]) and answers link_action
// "linked_existing". The Provisioner also serves the RFC 9728 and RFC 8414
// metadata, RFC 7009 token revocation and signed revocation events. Its
// [Provisioner.Middleware] guards the provider's own API with bearer tokens
// stored only as hashes in a [TokenStore]; handlers read the caller with
// [IdentityFromContext]. Codes of linking flows in progress live in a
// [GrantStore], so several provider instances can share one flow.
//
// Linking, orchestrator side: [Linker] is the client of that token endpoint.
// It sends the JWT-bearer grant with a fresh attestation (and the human's
// consent receipt), checks the answer and stores the credential in the
// [Vault]. When the provider answers consent_required, it follows the RFC
// 9728 resource metadata, starts the device flow and returns a
// [*PendingConsent] error: the agent shows its code and verification URI to
// the human, and [PendingConsent.Wait] polls until the link is approved,
// denied or expired.
//
// Revocation, orchestrator side: [Revoker] sends a signed revocation event
// (typ agentprov-revocation+jwt) for each of a project's vault credentials to
// its provider, retries with backoff, deletes a credential only once the
// provider acknowledged, and reports what was revoked where. Clients discover
// linking endpoints with [ParseWWWAuthenticate], [FetchResourceMetadata] and
// [FetchServerMetadata].
//
// # Stores
//
// State lives behind small interfaces whose methods are single atomic
// steps: [ReplayStore] (put-if-absent with expiry), [VaultStore] (get,
// put, compare-and-set, delete, list), [AccountStore] (create-if-absent,
// link by compare-and-set), [TokenStore] and [GrantStore], with in-memory
// implementations here and SQL ones for SQLite and
// PostgreSQL in package authz/sqlstore. Package authz/authztest holds the
// conformance suites every implementation passes.
//
// # Errors
//
// Every protocol failure is an [*Error] with a stable snake_case Code and
// an HTTP status; errors.Is matches by code against the sentinels, such as
// [ErrTokenExpired], [ErrWrongTokenType] or [ErrCredentialNotFound]. Detail
// is safe to send in a problem+json body; the internal cause (Err) is not.
//
// # Concurrency
//
// Every exported type with methods that act (Attester, Verifier, KeySet,
// Vault, Linker, PendingConsent and the stores) is safe for concurrent use.
// Plain data types (Attestation, ConsentReceipt, Credential, VaultRecord,
// LinkRequest, LinkResult, the option structs) are values: share them
// read-only or copy them. Attesters rotate keys while signing; KeySets
// coalesce concurrent fetches; the Vault builds updates and token refreshes
// on compare-and-set so concurrent writers never lose an update; concurrent
// Waits on one PendingConsent share one polling loop.
//
// # Assembly
//
// A provider hands its Provisioner to agentprov.NewProvider, which mounts
// every endpoint under one base URL (see examples/embed):
//
//	verifier, _ := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: orch, JWKSURL: orch + "/.well-known/jwks.json"}},
//		authz.NewMemoryReplayStore(nil), nil)
//	prov, _ := authz.NewProvisioner(verifier, authz.NewMemoryAccountStore(), authz.NewMemoryTokenStore(),
//		&authz.ProvisionerOptions{Issuer: base, TermsVersion: "2026-04", TermsURL: terms})
//	p, _ := agentprov.NewProvider(base, meta, catalog, prov, nil)
//	p.Mount(mux)
//
// An orchestrator signs with an Attester (serving Attester.JWKSHandler),
// keeps credentials in a Vault, provisions through a Linker, and calls
// provider APIs with a VaultTransport:
//
//	client := &http.Client{Transport: &authz.VaultTransport{Vault: vault, Project: "blog", Ref: "acme/dns"}}
package authz

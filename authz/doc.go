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
// Provisioning, OAuth and revocation (provider side, with their client
// counterparts): the provisioning endpoint that turns a verified
// attestation into a new or linked account and credentials, OAuth 2.1
// consent for existing accounts (authorization code with PKCE and the
// device flow), the bearer-token middleware with its WWW-Authenticate
// challenge, and revocation events signed with [Attester.Sign] and checked
// with [Verifier.VerifyTyped].
//
// # Stores
//
// State lives behind small interfaces whose methods are single atomic
// steps: [ReplayStore] (put-if-absent with expiry) and [VaultStore] (get,
// put, compare-and-set, delete, list), with in-memory implementations here
// ([MemoryReplayStore], [MemoryVaultStore]) and SQL ones for SQLite and
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
// Vault and the stores) is safe for concurrent use. Plain data types
// (Attestation, ConsentReceipt, Credential, VaultRecord, the option
// structs) are values: share them read-only or copy them. Attesters rotate keys while signing; KeySets coalesce
// concurrent fetches; the Vault builds updates and token refreshes on
// compare-and-set so concurrent writers never lose an update.
package authz

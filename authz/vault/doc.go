// Package vault is the orchestrator side of the Authorization component
// (PROTOCOL §4): an orchestrator uses it to keep the credentials providers
// return, to provision or link its users' provider accounts, to call
// provider APIs with those credentials, and to revoke them. Attestations are
// signed by an [authz.Attester]; the provider side is package
// authz/provision.
//
// # Roles
//
// [Vault] keeps the credentials providers return, per project and service
// ref, over a [VaultStore]; [EncryptedVaultStore] seals records with
// AES-256-GCM so that any store, SQL included, holds ciphertext. [Secret]
// values never print, marshal or log. [Vault.TokenSource], [Vault.Env] and
// [VaultTransport] hand a credential to the code that needs it.
//
// Linking: [Linker] is the client of a provider's token endpoint. It sends
// the JWT-bearer grant with a fresh attestation (and the human's consent
// receipt), checks the answer and stores the credential in the [Vault].
// When the provider answers consent_required, it follows the RFC 9728
// resource metadata, starts the device flow and returns a
// [*PendingConsent] error: the agent shows its code and verification URI to
// the human, and [PendingConsent.Wait] polls until the link is approved,
// denied or expired.
//
// Revocation: [Revoker] sends a signed revocation event (typ
// agentprov-revocation+jwt) for each of a project's vault credentials to
// its provider, found through [RevocationTargets] ([StaticTargets] for a
// fixed list), retries with backoff, deletes a credential only once the
// provider acknowledged, and reports what was revoked where.
//
// # Stores
//
// The [VaultStore] interface (get, put, compare-and-set, delete, list) has
// single atomic steps for methods, with an in-memory implementation here and
// a SQL one for SQLite and PostgreSQL in package authz/sqlstore. Package
// authz/authztest holds the conformance suite every implementation passes.
//
// # Errors
//
// Failures are [*authz.Error] values matched with errors.Is by code, such
// as [ErrCredentialNotFound], [ErrVersionConflict] or
// [ErrRevocationIncomplete]. A provider's OAuth answers surface with the
// codes of package authz (authz.ErrConsentRequired,
// authz.ErrAuthorizationPending…).
//
// # Concurrency
//
// Vault, Linker, PendingConsent, Revoker, VaultTransport and the stores are
// safe for concurrent use. Plain data types (Credential, VaultRecord,
// LinkRequest, LinkResult, the option structs) are values: share them
// read-only or copy them. The Vault builds updates and token refreshes on
// compare-and-set so concurrent writers never lose an update; concurrent
// Waits on one PendingConsent share one polling loop.
//
// # Assembly
//
// An orchestrator signs with an authz.Attester (serving its JWKS), keeps
// credentials in a Vault, provisions through a Linker, and calls provider
// APIs with a VaultTransport:
//
//	attester, _ := authz.NewAttester(orch, key, nil)
//	vlt, _ := vault.NewVault(vault.NewMemoryVaultStore(), nil)
//	linker, _ := vault.NewLinker(attester, vlt, nil)
//	res, err := linker.Link(ctx, vault.LinkRequest{Project: "blog", Service: "acme/dns", Issuer: acmeIssuer,
//		Subject: sub, Email: email, EmailVerified: true, Consent: receipt})
//	// a *vault.PendingConsent error: show its code to the human, then Wait
//	client := &http.Client{Transport: &vault.VaultTransport{Vault: vlt, Project: "blog", Ref: "acme/dns"}}
package vault

// Package agentprov is an embeddable implementation of the agent provisioning
// protocol: the way an AI agent takes its user from nothing at a cloud
// provider — no account, no payment method, no API token — to a paid, running
// deployment without the human leaving the agent session.
//
// This root package documents how the pieces fit, and holds one small
// assembly: Provider, the provider role under one base URL mounted on a
// service's existing mux (see examples/embed). It lives here rather than in
// a concern package because it composes three of them (discovery, authz,
// payment) and none may import the others' role types for it. The wire
// specification, version 0.2 (draft), is [PROTOCOL.md] at the root of the module; the
// README shows both roles assembled.
//
// # Roles
//
// The orchestrator is a platform with signed-in users and a payment method on
// file; it acts for its user. The provider sells services. The agent drives
// both and never sees card data. Each concern package holds what every role
// shares (wire formats and their verification); where a concern has
// machinery only one role runs, it lives in a role sub-package that imports
// the shared package and never the other role's, so neither role needs the
// other to compile:
//
//   - [github.com/agentprov/agentprov/catalogschema]: the discovery documents
//     (ProviderMetadata, Catalog, Service), their embedded JSON Schemas,
//     bounded parsers (ParseMetadata, ParseCatalog) and service refs (Ref,
//     ParseRef).
//   - [github.com/agentprov/agentprov/discovery]: the provider's Handler
//     (metadata, signed catalog, JWKS) and the orchestrator's Aggregator
//     (fetch, verify, cache, drift, quarantine, Search and Lookup).
//   - [github.com/agentprov/agentprov/authz], shared: the attestation format
//     (Attester signs, Verifier checks), consent receipts, signing keys,
//     KeySet and NewJWKSHandler, RFC 9728 / RFC 8414 metadata, the OAuth
//     wire types and errors.
//   - [github.com/agentprov/agentprov/authz/provision], provider: the
//     Provisioner (token endpoint, accounts created for new users, OAuth and
//     device-flow linking of existing ones), the DevicePage consent page,
//     the bearer Middleware, the revocation receiver, and the account,
//     token and grant stores.
//   - [github.com/agentprov/agentprov/authz/vault], orchestrator: the Linker,
//     the Vault of credentials (plain or encrypted), VaultTransport and the
//     Revoker.
//   - [github.com/agentprov/agentprov/budget]: spending caps enforced by a
//     Ledger over a small atomic Store (orchestrator); budget/lease leases
//     slices of a hot cap to many instances.
//   - [github.com/agentprov/agentprov/payment], shared and agent: payment
//     tokens and TokenVerifier, the HTTP "Payment" scheme's challenges and
//     credentials, receipts, session MACs, idempotency, and the agent's
//     Transport (the HTTP 402 client).
//   - [github.com/agentprov/agentprov/payment/issuer], orchestrator: the
//     Issuer (mint, redemption endpoint, release, revoke), its redemption
//     store, the settlement outbox over a Rail, and the Payers the
//     Transport calls.
//   - [github.com/agentprov/agentprov/payment/paywall], provider: the Paywall
//     (HTTP 402 middleware, one-shot and metered sessions), the Redeemer,
//     and the challenge and session stores.
//
// # The flow
//
//  1. Discovery: providers publish signed catalogs; the orchestrator
//     aggregates them and the agent picks a service by ref, such as
//     "cloudflare/registrar:domain".
//  2. Authorization: the orchestrator attests its user to the provider. A new
//     user gets an account created and credentials returned; an existing
//     account goes through OAuth consent. Credentials land in the
//     orchestrator's vault, one point of revocation.
//  3. Payment: the orchestrator reserves the amount under the user's caps
//     (by default $100 per provider per month), mints a payment token, and the
//     provider redeems it exactly once.
//
// # Stores
//
// Stateful packages define small store interfaces built on atomic conditional
// operations, each with an in-memory implementation (the default), a
// database/sql implementation for SQLite and PostgreSQL (authz/sqlstore,
// budget/sqlstore, payment/sqlstore), and a conformance suite every
// implementation passes (authz/authztest, budget/budgettest,
// payment/paymenttest).
//
// [PROTOCOL.md]: https://github.com/agentprov/agentprov/blob/main/PROTOCOL.md
package agentprov

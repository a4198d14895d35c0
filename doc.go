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
// both and never sees card data. Every concern package holds both roles under
// role-named types, and neither role needs the other to compile:
//
//   - [github.com/agentprov/agentprov/catalogschema]: the discovery documents
//     (ProviderMetadata, Catalog, Service), their embedded JSON Schemas,
//     bounded parsers (ParseMetadata, ParseCatalog) and service refs (Ref,
//     ParseRef).
//   - [github.com/agentprov/agentprov/discovery]: the provider's Handler
//     (metadata, signed catalog, JWKS) and the orchestrator's Aggregator
//     (fetch, verify, cache, drift, quarantine, Search and Lookup).
//   - [github.com/agentprov/agentprov/authz]: on the orchestrator side the
//     Attester (identity attestations, consent receipts, JWKS), the Linker
//     (account created, or an existing one linked through the device flow),
//     the Vault of credentials and the Revoker; on the provider side the
//     Verifier, KeySet and Provisioner (token endpoint, OAuth linking,
//     bearer middleware, revocation).
//   - [github.com/agentprov/agentprov/budget]: spending caps enforced by a
//     Ledger over a small atomic Store.
//   - [github.com/agentprov/agentprov/payment]: on the orchestrator side the
//     Issuer (mint, redemption endpoint, settlement outbox over a Rail) and
//     the Transport (the agent's HTTP 402 client); on the provider side the
//     TokenVerifier, the Redeemer and the Paywall (HTTP 402 middleware).
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

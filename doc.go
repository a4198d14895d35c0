// Package agentprov is an embeddable implementation of the agent provisioning
// protocol: the way an AI agent takes its user from nothing at a cloud
// provider — no account, no payment method, no API token — to a paid, running
// deployment without the human leaving the agent session.
//
// This root package holds no code; it documents how the pieces fit. The wire
// specification is PROTOCOL.md at the root of the module.
//
// # Roles
//
// The orchestrator is a platform with signed-in users and a payment method on
// file; it acts for its user. The provider sells services. The agent drives
// both and never sees card data. Every concern package holds both roles under
// role-named types, and neither role needs the other to compile:
//
//   - [github.com/agentprov/agentprov/catalogschema]: the catalog documents,
//     their embedded JSON Schemas and validation.
//   - [github.com/agentprov/agentprov/discovery]: the provider's catalog
//     handler and the orchestrator's Aggregator (fetch, verify, cache, drift,
//     quarantine, search, service refs).
//   - [github.com/agentprov/agentprov/authz]: identity attestation (Attester,
//     Verifier), account provisioning and linking, OAuth consent for existing
//     accounts, the credential vault and revocation.
//   - [github.com/agentprov/agentprov/budget]: spending caps enforced by a
//     Ledger over a small atomic Store.
//   - [github.com/agentprov/agentprov/payment]: payment tokens, exactly-once
//     redemption, settlement rails, and the HTTP 402 Payment scheme.
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
// database/sql implementation for SQLite and PostgreSQL, and a conformance
// suite every implementation passes.
package agentprov

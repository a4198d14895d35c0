// Package demo assembles both roles of the agent provisioning protocol from
// the agentprov packages, once, for the example programs: the quickstart
// (everything in one process), the orchestrator CLI and the provider server.
//
// It is example code, kept under examples/internal so that no user imports
// it, but it is written the way a real embedding would be: read it as the
// wiring guide.
//
// # Roles
//
// A [Provider] is a provider's existing Go service with the protocol mounted
// on its own *http.ServeMux: discovery documents and a signed catalog
// (discovery.Handler), account provisioning and linking (provision.Provisioner),
// a bearer-guarded API, and paid endpoints behind a paywall.Paywall whose
// tokens are checked by a payment.TokenVerifier that follows the
// orchestrator's key rotations and redeemed at the orchestrator.
//
// An [Orchestrator] is the platform with a signed-in user: it attests the
// user (authz.Attester, JWKS), aggregates the trusted catalogs
// (discovery.Aggregator), enforces caps (budget.Ledger), mints and redeems
// payment tokens (issuer.Issuer), keeps credentials in an encrypted
// vault.Vault and revokes them (vault.Revoker). Its Connect method drives
// the client side of provisioning through vault.Linker (JWT-bearer grant,
// then the device flow when the user already has an account), mapping its
// outcomes to what the programs show the human; AgentClient is the
// http.Client an agent calls a provider with: the vault's bearer token plus
// a payment.Transport that pays 402 challenges under the caps.
//
// # Stores
//
// Both assemblies take their stores as fields: in-memory for the
// quickstart, SQLite for the CLI and the provider server (OrchestratorSQL,
// ProviderSQL).
// Drivers are imported by the programs, never here.
//
// # Errors
//
// ErrNeedsHuman (a *TermsError for a provider's terms) marks a step only
// the human may take; ErrNotFound an unknown provider, service or
// resource; *ProviderError a provider that could not be reached or
// refused, with its HTTP status and protocol code. Refusals to pay come
// from the payment package unchanged (payment.ErrCapExceeded,
// payment.ErrCallCeiling), so callers branch with errors.Is. The CLI maps
// each to an exit code.
//
// # Concurrency
//
// Providers and Orchestrators are safe for concurrent use once built.
package demo

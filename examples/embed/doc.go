// Package embed shows both roles of the protocol embedded in code a user
// already has, as tested examples: an existing net/http service mounts the
// provider role under a path prefix (agentprov.Provider), and an
// orchestrator discovers it through a discovery.Aggregator and pays for a
// charged route with a issuer.Issuer and payment.Transport.
//
// # Roles
//
// Provider: build a provision.Provisioner trusting the orchestrator, hand it
// with the metadata and catalog to agentprov.NewProvider, and call Mount on
// the service's mux; paid routes are the service's own handlers wrapped in
// Provider.Paid. Orchestrator: trust the provider's base URL in an
// Aggregator, Refresh, then Search or Lookup.
//
// The package has no code of its own; see its examples.
package embed

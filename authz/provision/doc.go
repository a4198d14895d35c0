// Package provision is the provider side of package authz: the
// Provisioner that turns identity attestations into accounts and access
// tokens, its account, token and grant stores, the bearer-token
// middleware, the OAuth and device linking endpoints, and the receiver of
// revocation events.
package provision

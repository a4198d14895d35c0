// Package vault is the orchestrator side of package authz: the credential
// Vault and its stores, the Linker that provisions or links provider
// accounts, and the Revoker that sends revocation events.
package vault

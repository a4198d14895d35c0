package vault

import (
	"github.com/agentprov/agentprov/authz"
)

// Vault errors.
var (
	// ErrCredentialNotFound: the vault holds no credential under that key.
	ErrCredentialNotFound = &authz.Error{Code: "credential_not_found", Status: 404}
	// ErrVersionConflict: a compare-and-set on a vault record lost a race
	// (the record changed, or already exists when creation was asked).
	ErrVersionConflict = &authz.Error{Code: "version_conflict", Status: 409}
	// ErrVaultTampered: an encrypted vault record failed authentication:
	// it was altered, or moved under another record key.
	ErrVaultTampered = &authz.Error{Code: "vault_tampered", Status: 500}
	// ErrUnknownVaultKey: an encrypted vault record names a key id the
	// store was not given.
	ErrUnknownVaultKey = &authz.Error{Code: "unknown_vault_key", Status: 500}
	// ErrCredentialExpired: the stored access token has expired and no
	// refresher is configured (or it failed).
	ErrCredentialExpired = &authz.Error{Code: "credential_expired", Status: 401}
)

package authz

// TypeRevocation is the JOSE "typ" of revocation events (PROTOCOL §2.3).
const TypeRevocation = "agentprov-revocation+jwt"

// RevocationEvent is the claims set of a revocation event JWT (typ
// agentprov-revocation+jwt) that an orchestrator sends to a provider when
// its user removes a project or unlinks the provider.
type RevocationEvent struct {
	Issuer   string `json:"iss,omitempty"`
	Audience string `json:"aud"`
	ID       string `json:"jti,omitempty"`
	IssuedAt int64  `json:"iat,omitempty"`
	Expiry   int64  `json:"exp,omitempty"`
	// Subject is the orchestrator user, when known; the provider then
	// requires the account to be linked to (iss, sub).
	Subject   string `json:"sub,omitempty"`
	AccountID string `json:"account_id"`
	Project   string `json:"project,omitempty"`
	Service   string `json:"service,omitempty"`
	// TokenHashes are base64url SHA-256 digests of the access tokens to
	// revoke (never the tokens). Empty means every token of the account
	// issued to this orchestrator.
	TokenHashes []string `json:"token_hashes,omitempty"`
}

// RevocationAck is the provider's 200 answer to a revocation event.
type RevocationAck struct {
	ProtocolVersion string `json:"protocol_version"`
	// Revoked counts tokens revoked by this event (0 on a repeat).
	Revoked int `json:"revoked"`
}

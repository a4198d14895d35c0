package authz

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/agentprov/agentprov/internal/oauthwire"
)

// OAuth grant types accepted at the provider's token endpoint.
const (
	// GrantTypeJWTBearer is the RFC 7523 grant that carries an identity
	// attestation as its assertion: the account provisioning grant.
	GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// GrantTypeDeviceCode is the RFC 8628 device grant (linking).
	GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
	// GrantTypeAuthorizationCode is the RFC 6749 code grant with PKCE (linking).
	GrantTypeAuthorizationCode = "authorization_code"
)

// Link actions reported in a token response.
const (
	// LinkCreated: the provider created a new account for the identity.
	LinkCreated = "created"
	// LinkExisting: the identity is linked to an account that existed
	// before this request (linked earlier, or just now after consent).
	LinkExisting = "linked_existing"
)

// OAuth errors of the provider's token, authorization and device endpoints.
// They travel as RFC 6749 §5.2 error JSON (see PROTOCOL §4.5), with Code as
// the "error" member.
var (
	ErrInvalidGrant         = &Error{Code: "invalid_grant", Status: http.StatusBadRequest}
	ErrUnsupportedGrantType = &Error{Code: "unsupported_grant_type", Status: http.StatusBadRequest}
	ErrInvalidClient        = &Error{Code: "invalid_client", Status: http.StatusUnauthorized}
	ErrInvalidScope         = &Error{Code: "invalid_scope", Status: http.StatusBadRequest}
	ErrServerError          = &Error{Code: "server_error", Status: http.StatusInternalServerError}
	// ErrConsentRequired: an account exists for the attested email but is
	// not linked to this identity; the user must consent through OAuth.
	ErrConsentRequired = &Error{Code: "consent_required", Status: http.StatusUnauthorized}
	// ErrTermsNotAccepted: creating an account needs a consent receipt for
	// the provider's current terms, accepted by the human.
	ErrTermsNotAccepted = &Error{Code: "terms_not_accepted", Status: http.StatusBadRequest}
	// ErrEmailNotVerified: the attested email is not verified, so no
	// account may be created from it.
	ErrEmailNotVerified = &Error{Code: "email_not_verified", Status: http.StatusBadRequest}
)

// TokenResponse is the RFC 6749 §5.1 success body of the token endpoint,
// extended with account_id and link_action. Its String and Format redact
// the access token.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
	AccountID   string `json:"account_id"`
	LinkAction  string `json:"link_action"`
}

// String describes the response without the token.
func (t TokenResponse) String() string {
	return fmt.Sprintf("TokenResponse{account_id=%s link_action=%s scope=%q expires_in=%d access_token=REDACTED}",
		t.AccountID, t.LinkAction, t.Scope, t.ExpiresIn)
}

// Format prints String for every verb so the token cannot leak via %#v.
func (t TokenResponse) Format(f fmt.State, _ rune) { fmt.Fprint(f, t.String()) }

// LogValue redacts the token in structured logs.
func (t TokenResponse) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Bearer-token errors answered by the provider middleware (RFC 6750 §3.1).
var (
	// ErrMissingToken: the request carries no bearer token at all.
	ErrMissingToken = &Error{Code: "missing_token", Status: http.StatusUnauthorized}
	// ErrInvalidToken: the token is malformed, unknown, expired or revoked.
	// The response does not say which, so it cannot be used as an oracle.
	ErrInvalidToken = &Error{Code: "invalid_token", Status: http.StatusUnauthorized}
	// ErrInsufficientScope: the token is valid but lacks a required scope.
	ErrInsufficientScope = &Error{Code: "insufficient_scope", Status: http.StatusForbidden}
	// ErrTemporarilyUnavailable: a store failed; the client may retry.
	ErrTemporarilyUnavailable = &Error{Code: "temporarily_unavailable", Status: http.StatusServiceUnavailable}
)

// Device-flow errors (RFC 8628 §3.5), answered at the token endpoint while
// the client polls.
var (
	ErrAuthorizationPending = &Error{Code: "authorization_pending", Status: http.StatusBadRequest}
	ErrSlowDown             = &Error{Code: "slow_down", Status: http.StatusBadRequest}
	ErrDeviceCodeExpired    = &Error{Code: "expired_token", Status: http.StatusBadRequest}
	ErrAccessDenied         = &Error{Code: "access_denied", Status: http.StatusBadRequest}
)

// DeviceAuthorizationResponse is the RFC 8628 §3.2 response body.
type DeviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// String describes the response without the device code, which is what
// the polling client redeems for tokens. The user code is shown: the human
// types it anyway.
func (d DeviceAuthorizationResponse) String() string {
	return fmt.Sprintf("DeviceAuthorizationResponse{user_code=%s verification_uri=%s expires_in=%d interval=%d device_code=REDACTED}",
		d.UserCode, d.VerificationURI, d.ExpiresIn, d.Interval)
}

// Format prints String for every verb so the device code cannot leak via
// %v, %+v or %#v.
func (d DeviceAuthorizationResponse) Format(f fmt.State, _ rune) { fmt.Fprint(f, d.String()) }

// LogValue redacts the device code in structured logs.
func (d DeviceAuthorizationResponse) LogValue() slog.Value { return slog.StringValue(d.String()) }

// TokenHash is the SHA-256 digest of an access token. Stores keep only
// this: a leaked table does not yield usable credentials.
type TokenHash [sha256.Size]byte

// HashToken returns the digest under which token is stored.
func HashToken(token string) TokenHash { return sha256.Sum256([]byte(token)) }

// String renders the hash in unpadded base64url, the form used on the wire
// in revocation events.
func (h TokenHash) String() string { return base64.RawURLEncoding.EncodeToString(h[:]) }

// ParseTokenHash decodes the unpadded base64url form produced by String.
func ParseTokenHash(s string) (TokenHash, error) {
	var h TokenHash
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("authz: token hash %q is not 32 bytes of base64url", oauthwire.Truncate(s, 64))
	}
	copy(h[:], b)
	return h, nil
}

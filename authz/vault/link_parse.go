package vault

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/oauthwire"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// oauthErrorBody is the RFC 6749 §5.2 error body as a Linker reads it,
// with the linking hints a Provisioner adds.
type oauthErrorBody struct {
	Error               string `json:"error"`
	ErrorDescription    string `json:"error_description"`
	ResourceMetadata    string `json:"resource_metadata"`
	AuthorizationServer string `json:"authorization_server"`
	Interval            int64  `json:"interval"`
}

// tokenAnswer is the RFC 6749 §5.1 success body as a Linker reads it:
// TokenResponse plus the refresh token some providers issue.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	AccountID    string `json:"account_id"`
	LinkAction   string `json:"link_action"`
}

// maxExpiresIn bounds expires_in and similar durations (ten years in
// seconds) so that adding them to a time cannot overflow.
const maxExpiresIn = 10 * 365 * 24 * 3600

// decodeObject decodes one JSON object, refusing trailing data.
func decodeObject(body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	if dec.Decode(v) != nil {
		return false
	}
	_, err := dec.Token()
	return err != nil // io.EOF: nothing follows
}

// parseOAuthError turns a non-200 answer into the provider's *Error (code as
// sent, status as answered) or ErrInvalidResponse when it carries no valid
// OAuth error.
func parseOAuthError(status int, body []byte) (*oauthErrorBody, error) {
	var eb oauthErrorBody
	if !decodeObject(body, &eb) || !validErrorCode(eb.Error) {
		return nil, errorf(ErrInvalidResponse, nil, "HTTP %d without an OAuth error", status)
	}
	if eb.Interval < 0 || eb.Interval > maxExpiresIn {
		eb.Interval = 0
	}
	if _, err := safehttp.CheckURL(eb.ResourceMetadata); err != nil {
		eb.ResourceMetadata = ""
	}
	return &eb, &authz.Error{Code: eb.Error, Status: status, Detail: cleanDescription(eb.ErrorDescription)}
}

// validErrorCode accepts snake_case codes of at most 64 bytes, which covers
// every RFC 6749, RFC 8628 and agentprov code.
func validErrorCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// cleanDescription keeps the RFC 6749 §5.2 character set of
// error_description, bounded, so that a provider cannot inject control
// characters into logs or terminals.
func cleanDescription(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 200; i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// decodeAnswer decodes a 200 application/json answer holding one object
// into v; any other status is the provider's OAuth error.
func decodeAnswer(status int, contentType string, body []byte, what string, v any) (*oauthErrorBody, error) {
	if status != http.StatusOK {
		return parseOAuthError(status, body)
	}
	if mt, _, _ := mime.ParseMediaType(contentType); mt != "application/json" {
		return nil, errorf(ErrInvalidResponse, nil, "%s is not application/json", what)
	}
	if !decodeObject(body, v) {
		return nil, errorf(ErrInvalidResponse, nil, "%s is not a JSON object", what)
	}
	return nil, nil
}

// parseTokenAnswer parses a token endpoint answer: a TokenResponse on 200,
// else the provider's OAuth error and its hints.
func parseTokenAnswer(status int, contentType string, body []byte) (*tokenAnswer, *oauthErrorBody, error) {
	var t tokenAnswer
	if hint, err := decodeAnswer(status, contentType, body, "token response", &t); err != nil {
		return nil, hint, err
	}
	switch {
	case t.AccessToken == "" || len(t.AccessToken) > 4096:
		return nil, nil, errorf(ErrInvalidResponse, nil, "token response lacks access_token")
	case !strings.EqualFold(t.TokenType, "Bearer"):
		return nil, nil, errorf(ErrInvalidResponse, nil, "token type %q is not Bearer", oauthwire.Truncate(t.TokenType, 32))
	case t.ExpiresIn < 0 || t.ExpiresIn > maxExpiresIn:
		return nil, nil, errorf(ErrInvalidResponse, nil, "expires_in %d out of range", t.ExpiresIn)
	case t.LinkAction != authz.LinkCreated && t.LinkAction != authz.LinkExisting:
		return nil, nil, errorf(ErrInvalidResponse, nil, "link_action %q is neither %q nor %q", oauthwire.Truncate(t.LinkAction, 32), authz.LinkCreated, authz.LinkExisting)
	case t.AccountID == "" || len(t.AccountID) > 256:
		return nil, nil, errorf(ErrInvalidResponse, nil, "token response lacks account_id")
	case len(t.Scope) > 4096 || len(t.RefreshToken) > 4096:
		return nil, nil, errorf(ErrInvalidResponse, nil, "token response member too long")
	}
	for _, s := range strings.Fields(t.Scope) {
		if !oauthwire.ValidScopeToken(s) {
			return nil, nil, errorf(ErrInvalidResponse, nil, "scope %q is not a scope token", oauthwire.Truncate(s, 32))
		}
	}
	return &t, nil, nil
}

// parseDeviceAnswer parses a device authorization answer (RFC 8628 §3.2):
// every member present, URIs HTTPS or loopback, durations in range.
func parseDeviceAnswer(status int, contentType string, body []byte) (*authz.DeviceAuthorizationResponse, *oauthErrorBody, error) {
	var d authz.DeviceAuthorizationResponse
	if hint, err := decodeAnswer(status, contentType, body, "device authorization response", &d); err != nil {
		return nil, hint, err
	}
	switch {
	case d.DeviceCode == "" || len(d.DeviceCode) > 1024:
		return nil, nil, errorf(ErrInvalidResponse, nil, "device authorization response lacks device_code")
	case d.UserCode == "" || len(d.UserCode) > 64 || cleanDescription(d.UserCode) != d.UserCode:
		return nil, nil, errorf(ErrInvalidResponse, nil, "device authorization response lacks a printable user_code")
	case d.ExpiresIn <= 0 || d.ExpiresIn > maxExpiresIn:
		return nil, nil, errorf(ErrInvalidResponse, nil, "expires_in %d out of range", d.ExpiresIn)
	case d.Interval < 0 || d.Interval > maxExpiresIn:
		return nil, nil, errorf(ErrInvalidResponse, nil, "interval %d out of range", d.Interval)
	}
	// The human opens these: only https (or loopback for tests), never a
	// javascript: or data: URI.
	if _, err := safehttp.CheckURL(d.VerificationURI); err != nil || len(d.VerificationURI) > 2048 {
		return nil, nil, errorf(ErrInvalidResponse, err, "verification_uri is not an https URL")
	}
	if d.VerificationURIComplete != "" {
		if _, err := safehttp.CheckURL(d.VerificationURIComplete); err != nil || len(d.VerificationURIComplete) > 2048 {
			return nil, nil, errorf(ErrInvalidResponse, err, "verification_uri_complete is not an https URL")
		}
	}
	return &d, nil, nil
}

package authz

import (
	"errors"
	"fmt"
	"time"
)

// Error is the protocol error of package authz. Code is the stable
// snake_case identifier carried as the "code" member of a problem+json body
// (PROTOCOL §2.4) and Status the HTTP status a server answers with. Detail is
// a human-readable explanation safe to send on the wire; Err, when set, is the
// internal cause and is never put on the wire.
//
// Two errors match under errors.Is when their codes are equal, so
//
//	errors.Is(err, authz.ErrTokenExpired)
//
// holds for every expired-token error, whatever its Detail. An *Error is
// immutable once returned and safe to share between goroutines.
type Error struct {
	Code   string
	Status int
	Detail string
	Err    error
	// RetryInterval, on slow_down, is the polling interval the server
	// enforces from now on (RFC 8628 §3.5): the base interval plus 5
	// seconds for each slow_down this device code has earned. The token
	// endpoint sends it as "interval", rounded up to whole seconds.
	RetryInterval time.Duration
}

// Error reads "authz: <code>[: detail][: cause]"; the cause stays off the wire.
func (e *Error) Error() string {
	s := "authz: " + e.Code
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the internal cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the condition may pass on a retry with the
// same input: the status is 503 (jwks_unavailable,
// temporarily_unavailable). payment's Paywall uses it to tell an
// unreachable JWKS from a bad token.
func (e *Error) Temporary() bool { return e != nil && e.Status == 503 }

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && e != nil && t.Code == e.Code
}

// errorf returns a fresh *Error carrying sentinel's code and status.
func errorf(sentinel *Error, cause error, format string, args ...any) *Error {
	return &Error{Code: sentinel.Code, Status: sentinel.Status, Detail: fmt.Sprintf(format, args...), Err: cause}
}

// AsError returns the *Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Codes owned by identity attestation, keys, consent receipts and replay
// protection. The OAuth wire codes both roles read are in oauth_wire.go;
// the role packages (authz/provision, authz/vault) define their own codes
// with the same type.
var (
	// ErrMalformedToken: the token is not a compact JWS with a JSON header
	// and payload, or a required claim is missing or has the wrong type.
	ErrMalformedToken = &Error{Code: "malformed_token", Status: 400}
	// ErrTokenTooLarge: the token is longer than the verifier's limit; it
	// was rejected before any parsing.
	ErrTokenTooLarge = &Error{Code: "token_too_large", Status: 400}
	// ErrAlgorithmNotAllowed: the JWS "alg" is "none", a MAC algorithm such
	// as HS256, or any algorithm outside the verifier's allow-list.
	ErrAlgorithmNotAllowed = &Error{Code: "algorithm_not_allowed", Status: 401}
	// ErrWrongTokenType: the JWS "typ" header is not the one expected, e.g.
	// an ID token or a payment token presented as an attestation.
	ErrWrongTokenType = &Error{Code: "wrong_token_type", Status: 401}
	// ErrForbiddenHeader: the JWS carries a header that could smuggle a key
	// or change processing rules (jwk, jku, x5u, x5c, x5t, crit, b64).
	ErrForbiddenHeader = &Error{Code: "forbidden_header", Status: 401}
	// ErrUnknownIssuer: "iss" is not in the verifier's trust list.
	ErrUnknownIssuer = &Error{Code: "unknown_issuer", Status: 401}
	// ErrUnknownKey: the issuer publishes no key with the header's "kid"
	// (or the key does not fit "alg").
	ErrUnknownKey = &Error{Code: "unknown_key", Status: 401}
	// ErrInvalidSignature: the signature does not verify under the issuer's key.
	ErrInvalidSignature = &Error{Code: "invalid_signature", Status: 401}
	// ErrWrongAudience: "aud" is not the verifier's audience.
	ErrWrongAudience = &Error{Code: "wrong_audience", Status: 401}
	// ErrTokenExpired: "exp" is in the past, beyond the leeway.
	ErrTokenExpired = &Error{Code: "token_expired", Status: 401}
	// ErrTokenNotYetValid: "nbf" or "iat" is in the future, beyond the leeway.
	ErrTokenNotYetValid = &Error{Code: "token_not_yet_valid", Status: 401}
	// ErrLifetimeTooLong: exp−iat exceeds the verifier's maximum lifetime.
	ErrLifetimeTooLong = &Error{Code: "lifetime_too_long", Status: 401}
	// ErrTokenReplayed: the token's "jti" was already used.
	ErrTokenReplayed = &Error{Code: "token_replayed", Status: 401}
	// ErrHumanAcceptanceRequired: a consent receipt lacks the human
	// acceptance flag or time; agents can never accept terms alone.
	ErrHumanAcceptanceRequired = &Error{Code: "human_acceptance_required", Status: 400}
	// ErrInvalidRequest: an argument given to a signing or vault call is
	// invalid (missing audience, bad service ref, bad env name…).
	ErrInvalidRequest = &Error{Code: "invalid_request", Status: 400}
	// ErrKeySetUnavailable: an issuer's JWKS could not be fetched or parsed
	// and no cached copy holds the key.
	ErrKeySetUnavailable = &Error{Code: "jwks_unavailable", Status: 503}
	// ErrReplayStoreFull: the in-memory replay store reached its bound with
	// no expired entry to evict; tokens are refused rather than let through.
	ErrReplayStoreFull = &Error{Code: "replay_store_full", Status: 503}
)

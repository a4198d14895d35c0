package payment

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is the error type of package payment. Code is the protocol error
// code sent in the problem+json body, Status the HTTP status that goes with
// it. Two *Error values match under errors.Is when their Codes are equal, so
// callers compare against the sentinels below:
//
//	if errors.Is(err, payment.ErrTokenExpired) { … }
//
// Detail is human-readable and never contains secrets. Err, when set, is the
// underlying cause (kept for errors.Is/As, never sent on the wire).
// An *Error is immutable once returned and safe for concurrent use.
type Error struct {
	Code   string
	Status int
	Detail string
	Err    error
}

// Error reads "payment: <code>[: detail][: cause]"; the cause stays off the wire.
func (e *Error) Error() string {
	msg := "payment: " + e.Code
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code
}

// With returns a copy of the sentinel e carrying detail and cause; the
// role packages (payment/issuer, payment/paywall) make their errors so.
func (e *Error) With(cause error, format string, args ...any) *Error {
	return &Error{Code: e.Code, Status: e.Status, Detail: fmt.Sprintf(format, args...), Err: cause}
}

func sentinel(code string, status int, detail string) *Error {
	return &Error{Code: code, Status: status, Detail: detail}
}

// Sentinels of the token, redemption, settlement and idempotency parts.
// Compare with errors.Is.
var (
	// ErrTokenInvalid: the payment token is malformed, badly signed, of the
	// wrong typ, or names another audience or issuer.
	ErrTokenInvalid = sentinel("token_invalid", http.StatusUnauthorized, "payment token is not valid")
	// ErrTokenExpired: the token's exp has passed.
	ErrTokenExpired = sentinel("token_expired", http.StatusUnauthorized, "payment token has expired")
	// ErrTokenRevoked: the orchestrator revoked the token (or swept it after expiry).
	ErrTokenRevoked = sentinel("token_revoked", http.StatusConflict, "payment token was revoked")
	// ErrAmountExceedsMax: the redeemed amount is above the token's maximum.
	ErrAmountExceedsMax = sentinel("amount_exceeds_max", http.StatusUnprocessableEntity, "amount exceeds the token's maximum")
	// ErrCurrencyMismatch: the redeemed amount is in another currency than the token's.
	ErrCurrencyMismatch = sentinel("currency_mismatch", http.StatusUnprocessableEntity, "currency differs from the token's")
	// ErrInvalidAmount: the amount is negative, zero where not allowed, or malformed.
	ErrInvalidAmount = sentinel("invalid_amount", http.StatusBadRequest, "amount is not valid")
	// ErrAlreadyRedeemed: the token was redeemed with a different request.
	ErrAlreadyRedeemed = sentinel("already_redeemed", http.StatusConflict, "payment token was already redeemed")
	// ErrRedemptionInFlight: another redemption of the same token is being
	// processed, or its commit is waiting for a retry; try again later.
	ErrRedemptionInFlight = sentinel("redemption_in_flight", http.StatusConflict, "a redemption of this token is in progress")
	// ErrSettlementRefused: the payment rail definitively refused the charge;
	// the spend was reversed.
	ErrSettlementRefused = sentinel("settlement_refused", http.StatusPaymentRequired, "settlement was refused by the payment rail")
	// ErrSettlementPending: the commit is recorded but the charge is not yet
	// confirmed; the outbox keeps retrying. Redeem and the Redeemer report
	// this state as a receipt with State StateSettling and a nil error (HTTP
	// 202); Receipt.Err turns it into this error for callers that want one.
	ErrSettlementPending = sentinel("settlement_pending", http.StatusAccepted, "settlement is not yet confirmed")
	// ErrCapExceeded: the budget refused the hold (spending cap).
	ErrCapExceeded = sentinel("cap_exceeded", http.StatusPaymentRequired, "spending cap would be exceeded")
	// ErrCallCeiling: the amount is above the per-call ceiling.
	ErrCallCeiling = sentinel("call_ceiling_exceeded", http.StatusPaymentRequired, "amount is above the per-call ceiling")
	// ErrInvalidRequest: a request body or parameter is malformed.
	ErrInvalidRequest = sentinel("invalid_request", http.StatusBadRequest, "request is malformed")
	// ErrUnauthorized: the caller of the redemption endpoint is not authenticated.
	ErrUnauthorized = sentinel("unauthorized", http.StatusUnauthorized, "provider authentication failed")
	// ErrForbidden: the authenticated provider is not the token's audience.
	ErrForbidden = sentinel("forbidden", http.StatusForbidden, "token is addressed to another provider")
	// ErrNotFound: no such redemption.
	ErrNotFound = sentinel("not_found", http.StatusNotFound, "no such redemption")
	// ErrIdempotencyKeyRequired: a state-changing request came without Idempotency-Key.
	ErrIdempotencyKeyRequired = sentinel("idempotency_key_required", http.StatusBadRequest, "Idempotency-Key header is required")
	// ErrIdempotencyConflict: the key was used before with a different request body.
	ErrIdempotencyConflict = sentinel("idempotency_conflict", http.StatusUnprocessableEntity, "Idempotency-Key was used with a different request")
	// ErrIdempotencyInFlight: a request with the same key is still being processed.
	ErrIdempotencyInFlight = sentinel("idempotency_in_flight", http.StatusConflict, "a request with this Idempotency-Key is in flight")
	// ErrRailRefused: the payment rail definitively refused a charge. Rails
	// wrap it (errors.Is) to mark a refusal as final; any other error is transient.
	ErrRailRefused = sentinel("rail_refused", http.StatusPaymentRequired, "payment rail refused the charge")
	// ErrStore: a store failed; the operation failed closed.
	ErrStore = sentinel("store_unavailable", http.StatusServiceUnavailable, "storage failure")
	// ErrBadGateway: the orchestrator answered with something unexpected (client side).
	ErrBadGateway = sentinel("bad_gateway", http.StatusBadGateway, "unexpected response from the orchestrator")
	// ErrConflict: a store compare-and-set lost (state changed underneath).
	ErrConflict = sentinel("conflict", http.StatusConflict, "concurrent update")
)

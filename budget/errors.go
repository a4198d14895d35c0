package budget

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a budget failure with a protocol error code and the HTTP status an
// orchestrator answers with. Two *Error values match under errors.Is when
// their codes are equal, so a detailed error matches its sentinel.
type Error struct {
	// Code is the stable protocol code, such as "cap_exceeded".
	Code string
	// Status is the HTTP status that goes with Code.
	Status int
	// Detail says what was wrong; it names no secret.
	Detail string
	// Err is the underlying cause, if any (for ErrStore, the store's error).
	// It is kept off the wire.
	Err error
}

// Error reads "budget: <code>[: detail][: cause]".
func (e *Error) Error() string {
	s := "budget: " + e.Code
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func newErr(code string, status int) *Error { return &Error{Code: code, Status: status} }

// Sentinels, compared with errors.Is. Returned errors usually carry detail
// (an *Error with the same code, or a *CapError) and match these.
var (
	// ErrCapExceeded: the reservation would take some cap over its limit.
	// The error is a *CapError naming the cap.
	ErrCapExceeded = newErr("cap_exceeded", http.StatusForbidden)
	// ErrCallCeiling: the amount is above the per-call ceiling.
	ErrCallCeiling = newErr("call_ceiling_exceeded", http.StatusForbidden)
	// ErrHoldNotFound: no hold has that id.
	ErrHoldNotFound = newErr("hold_not_found", http.StatusNotFound)
	// ErrHoldExpired: the hold expired before the operation; it ended as
	// expired and counts nothing.
	ErrHoldExpired = newErr("hold_expired", http.StatusConflict)
	// ErrHoldEnded: the hold already ended in a state the operation cannot
	// start from (committing a released hold, reversing an active one…).
	ErrHoldEnded = newErr("hold_ended", http.StatusConflict)
	// ErrCurrencyMismatch: an amount is not in the Ledger's currency.
	ErrCurrencyMismatch = newErr("currency_mismatch", http.StatusBadRequest)
	// ErrInvalidAmount: an amount is not positive, or a commit exceeds the
	// held amount, or a field is malformed.
	ErrInvalidAmount = newErr("invalid_amount", http.StatusBadRequest)
	// ErrInvalidRequest: a scope, key, period or other input is malformed.
	ErrInvalidRequest = newErr("invalid_request", http.StatusBadRequest)
	// ErrIdempotencyConflict: the idempotency key was used for a different
	// request, or a hold was committed again with a different amount.
	ErrIdempotencyConflict = newErr("idempotency_conflict", http.StatusUnprocessableEntity)
	// ErrNotAuthorized: the principal may not perform the action (an agent
	// changing a cap).
	ErrNotAuthorized = newErr("not_authorized", http.StatusForbidden)
	// ErrStore: the store failed or did not confirm. The operation failed
	// closed: nothing was granted that the store did not confirm.
	ErrStore = newErr("store_unavailable", http.StatusServiceUnavailable)
)

// errorf returns an *Error with sentinel's code and status and a detail.
func errorf(sentinel *Error, format string, args ...any) *Error {
	return &Error{Code: sentinel.Code, Status: sentinel.Status, Detail: fmt.Sprintf(format, args...)}
}

// CapError reports which cap a reservation would exceed. It matches
// ErrCapExceeded under errors.Is.
type CapError struct {
	// Counter is the counter (scope and window) whose cap would be exceeded.
	Counter Counter
	// Limit is the cap in force.
	Limit Money
	// Used is what already counted: committed, arrears and active holds.
	Used int64
	// Requested is the amount asked for.
	Requested int64
}

// Error names the scope, the window and the amounts in major units with
// their currency ("limit 100.00 USD, used 99.50 USD, requested 50.00 USD"),
// so a log line or a message shown to a person says which cap refused and
// by how much. The amounts in minor units are the struct's fields.
func (e *CapError) Error() string {
	scope := e.Counter.Project + "/" + e.Counter.Provider
	if e.Counter.Provider == "" {
		scope = e.Counter.Project + " (project-wide)"
	}
	cur := e.Limit.Currency
	return fmt.Sprintf("budget: cap_exceeded: %s in %s: limit %s, used %s, requested %s",
		scope, e.Counter.Window, e.Limit, Money{Amount: e.Used, Currency: cur}, Money{Amount: e.Requested, Currency: cur})
}

// Unwrap makes a *CapError match ErrCapExceeded.
func (e *CapError) Unwrap() error { return ErrCapExceeded }

// Remaining is how much the cap still allows (never negative).
func (e *CapError) Remaining() int64 { return max(0, e.Limit.Amount-e.Used) }

// Code returns the protocol code of err ("store_unavailable" for errors that
// are not the package's own) and the HTTP status to answer with.
func Code(err error) (code string, status int) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Status
	}
	var ce *CapError
	if errors.As(err, &ce) {
		return ErrCapExceeded.Code, ErrCapExceeded.Status
	}
	return ErrStore.Code, ErrStore.Status
}

package payment

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/internal/problem"
)

// RedemptionState is the state of one token's redemption record (§5.4).
//
//	issued ──redeem──▶ pending ──commit──▶ committed ──charge──▶ settling ──confirmed──▶ settled
//	   │                  │                                         │
//	   │                  └─hold gone──▶ void                        └─refused──▶ refused ──reverse──▶ reversed
//	   └─revoke/expiry──▶ revoking ──release──▶ revoked
type RedemptionState string

// The redemption states. settled, reversed, revoked and void are final.
const (
	StateIssued    RedemptionState = "issued"
	StatePending   RedemptionState = "pending"
	StateCommitted RedemptionState = "committed"
	StateSettling  RedemptionState = "settling"
	StateSettled   RedemptionState = "settled"
	StateRefused   RedemptionState = "refused"
	StateReversed  RedemptionState = "reversed"
	StateRevoking  RedemptionState = "revoking"
	StateRevoked   RedemptionState = "revoked"
	StateVoid      RedemptionState = "void"
)

// Final reports whether s is a terminal state.
func (s RedemptionState) Final() bool {
	switch s {
	case StateSettled, StateReversed, StateRevoked, StateVoid:
		return true
	}
	return false
}

// Valid reports whether s is one of the defined states.
func (s RedemptionState) Valid() bool {
	switch s {
	case StateIssued, StatePending, StateCommitted, StateSettling, StateSettled,
		StateRefused, StateReversed, StateRevoking, StateRevoked, StateVoid:
		return true
	}
	return false
}

// MaxRedemptionRequestSize bounds a redemption request body (bytes).
const MaxRedemptionRequestSize = 16 << 10

// RedemptionRequest is the body of POST to the redemption endpoint (§5.2).
// A plain value.
type RedemptionRequest struct {
	Token  string       `json:"token"`
	Amount budget.Money `json:"amount"`
}

// ParseRedemptionRequest decodes and checks a redemption request body.
// Errors match ErrInvalidRequest or ErrInvalidAmount.
func ParseRedemptionRequest(body []byte) (RedemptionRequest, error) {
	if len(body) > MaxRedemptionRequestSize {
		return RedemptionRequest{}, ErrInvalidRequest.With(nil, "body longer than %d bytes", MaxRedemptionRequestSize)
	}
	var raw struct {
		Token  *string `json:"token"`
		Amount *struct {
			Amount   *json.Number `json:"amount"`
			Currency *string      `json:"currency"`
		} `json:"amount"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return RedemptionRequest{}, ErrInvalidRequest.With(nil, "body is not a redemption request object")
	}
	if dec.More() {
		return RedemptionRequest{}, ErrInvalidRequest.With(nil, "trailing data after the JSON object")
	}
	if raw.Token == nil || *raw.Token == "" || len(*raw.Token) > MaxTokenSize {
		return RedemptionRequest{}, ErrInvalidRequest.With(nil, "token is missing or too long")
	}
	if raw.Amount == nil || raw.Amount.Amount == nil || raw.Amount.Currency == nil {
		return RedemptionRequest{}, ErrInvalidAmount.With(nil, "amount.amount and amount.currency are required")
	}
	n, err := raw.Amount.Amount.Int64()
	if err != nil || strings.ContainsAny(raw.Amount.Amount.String(), ".eE") {
		return RedemptionRequest{}, ErrInvalidAmount.With(nil, "amount.amount must be an integer in minor units")
	}
	m := budget.Money{Amount: n, Currency: *raw.Amount.Currency}
	if err := paywire.CheckMoney(m); err != nil || n == 0 {
		return RedemptionRequest{}, ErrInvalidAmount.With(nil, "amount must be a positive integer with an ISO 4217 currency")
	}
	return RedemptionRequest{Token: *raw.Token, Amount: m}, nil
}

// RedemptionView is the JSON body of a redemption resource (§5.2).
type RedemptionView struct {
	Version    string          `json:"protocol_version"`
	HoldID     string          `json:"hold_id"`
	State      RedemptionState `json:"state"`
	Amount     *budget.Money   `json:"amount,omitempty"`
	Provider   string          `json:"provider"`
	Service    string          `json:"service"`
	Project    string          `json:"project"`
	RedeemedAt string          `json:"redeemed_at,omitempty"`
	Receipt    string          `json:"receipt,omitempty"`
	Reference  string          `json:"settlement_reference,omitempty"`
}

// ViewOf is the redemption resource that shows r.
func ViewOf(r Receipt) RedemptionView {
	v := RedemptionView{
		Version: ProtocolVersion, HoldID: r.HoldID, State: r.State, Provider: r.Provider,
		Service: r.Service, Project: r.Project, Receipt: r.Signed, Reference: r.Reference,
	}
	if r.Amount != (budget.Money{}) {
		v.Amount = &r.Amount
	}
	if !r.RedeemedAt.IsZero() {
		v.RedeemedAt = r.RedeemedAt.UTC().Format(time.RFC3339)
	}
	return v
}

// ReleaseRequest is the body of POST {endpoint}/{hold_id}/release
// (§5.2.3): the token itself, so that only a holder of the token can
// release its hold. A plain value.
type ReleaseRequest struct {
	Token string `json:"token"`
}

// ParseReleaseRequest decodes and checks a release request body. Errors
// match ErrInvalidRequest.
func ParseReleaseRequest(body []byte) (ReleaseRequest, error) {
	if len(body) > MaxRedemptionRequestSize {
		return ReleaseRequest{}, ErrInvalidRequest.With(nil, "body longer than %d bytes", MaxRedemptionRequestSize)
	}
	var raw struct {
		Token *string `json:"token"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return ReleaseRequest{}, ErrInvalidRequest.With(nil, "body is not a release request object")
	}
	if dec.More() {
		return ReleaseRequest{}, ErrInvalidRequest.With(nil, "trailing data after the JSON object")
	}
	if raw.Token == nil || *raw.Token == "" || len(*raw.Token) > MaxTokenSize {
		return ReleaseRequest{}, ErrInvalidRequest.With(nil, "token is missing or too long")
	}
	return ReleaseRequest{Token: *raw.Token}, nil
}

// WriteErr writes err as problem+json; errors that are not *Error become
// a 500 with no internal detail.
func WriteErr(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		problem.Write(w, http.StatusInternalServerError, "internal_error", "")
		return
	}
	if e.Code == ErrRedemptionInFlight.Code || e.Code == ErrIdempotencyInFlight.Code || e.Code == ErrStore.Code {
		w.Header().Set("Retry-After", "1")
	}
	detail := e.Detail
	if e.Code == ErrStore.Code {
		detail = ErrStore.Detail // never leak store internals
	}
	problem.Write(w, e.Status, e.Code, detail)
}

package payment

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paywire"
)

// Receipt is the orchestrator's answer to a redemption. The fields up to
// RedeemedAt are signed into Signed (a compact JWS of typ
// agentprov-receipt+jwt), which the provider and the user keep as evidence;
// State and Reference report settlement progress at the time of the answer
// and are not signed. A plain value.
type Receipt struct {
	Issuer     string
	HoldID     string // the token's jti
	Amount     budget.Money
	Provider   string
	Service    string
	Project    string
	RedeemedAt time.Time
	Signed     string

	State     RedemptionState
	Reference string
}

// Err returns nil when the charge is confirmed (State settled, or a
// receipt read from its signature alone) and ErrSettlementPending while the
// orchestrator's outbox is still settling it.
func (r *Receipt) Err() error {
	switch r.State {
	case StateCommitted, StateSettling, StatePending:
		return ErrSettlementPending
	}
	return nil
}

// receiptWire is the JWT claims set of a receipt (§5.5).
type receiptWire struct {
	Iss        string       `json:"iss"`
	Aud        string       `json:"aud"`
	Sub        string       `json:"sub"`
	Jti        string       `json:"jti"`
	Iat        int64        `json:"iat"`
	Service    string       `json:"service"`
	Amount     budget.Money `json:"amount"`
	RedeemedAt string       `json:"redeemed_at"`
	Version    string       `json:"protocol_version"`
	// Exp and Nbf are never written: a receipt is evidence and does not
	// expire. They are read only to refuse a receipt that carries them.
	Exp *json.RawMessage `json:"exp,omitempty"`
	Nbf *json.RawMessage `json:"nbf,omitempty"`
}

func (r *Receipt) wire() receiptWire {
	return receiptWire{
		Iss: r.Issuer, Aud: r.Provider, Sub: r.Project, Jti: r.HoldID,
		Iat: r.RedeemedAt.Unix(), Service: r.Service, Amount: r.Amount,
		RedeemedAt: r.RedeemedAt.UTC().Format(time.RFC3339), Version: ProtocolVersion,
	}
}

// VerifyReceipt checks a signed receipt against the orchestrator's JWKS and
// issuer and returns its contents (State and Reference stay empty: they are
// not part of the signature). Receipts do not expire: one carrying exp or
// nbf is refused, and iat must be the instant of redeemed_at. Errors match
// ErrTokenInvalid.
func VerifyReceipt(signed string, keys *jose.JSONWebKeySet, issuer string) (*Receipt, error) {
	payload, err := verifyJWS(signed, ReceiptType, keys)
	if err != nil {
		return nil, ErrTokenInvalid.With(nil, "receipt: %v", err)
	}
	var w receiptWire
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, ErrTokenInvalid.With(nil, "receipt: claims are not a JSON object")
	}
	if err := w.validate(); err != nil {
		return nil, ErrTokenInvalid.With(nil, "receipt: %v", err)
	}
	if w.Iss != issuer {
		return nil, ErrTokenInvalid.With(nil, "receipt: iss %q is not %q", w.Iss, issuer)
	}
	at, _ := time.Parse(time.RFC3339, w.RedeemedAt)
	return &Receipt{
		Issuer: w.Iss, HoldID: w.Jti, Amount: w.Amount, Provider: w.Aud,
		Service: w.Service, Project: w.Sub, RedeemedAt: at.UTC(), Signed: signed,
	}, nil
}

func (w *receiptWire) validate() error {
	if w.Iss == "" || w.Jti == "" || !paywire.ValidProvider(w.Aud) || !paywire.ValidProject(w.Sub) {
		return errors.New("iss, jti, aud or sub missing or malformed")
	}
	if !paywire.MajorOK(w.Version) {
		return fmt.Errorf("unsupported protocol_version %q", w.Version)
	}
	if _, _, err := paywire.SplitRef(w.Service); err != nil {
		return err
	}
	if err := paywire.CheckMoney(w.Amount); err != nil {
		return fmt.Errorf("amount: %w", err)
	}
	at, err := time.Parse(time.RFC3339, w.RedeemedAt)
	if err != nil {
		return errors.New("redeemed_at is not RFC 3339")
	}
	if w.Exp != nil || w.Nbf != nil {
		return errors.New("a receipt carries no exp or nbf")
	}
	if w.Iat <= 0 || w.Iat != at.Unix() {
		return errors.New("iat is not the instant of redeemed_at")
	}
	return nil
}

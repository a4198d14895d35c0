package payment

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/agentprov/agentprov/internal/paywire"
)

// ReceiptHeaderName is the response header carrying a ReceiptHeader.
const ReceiptHeaderName = "Payment-Receipt"

// ReceiptHeader is the value of the "Payment-Receipt" response header
// (draft-ryan-httpauth-payment §5.3), sent only with a 2xx response that
// was paid for. Reference is the orchestrator's hold id (the token's jti);
// Signed, when present, is the orchestrator's redemption receipt (compact
// JWS, typ agentprov-receipt+jwt) that the payer can verify with the
// orchestrator's JWKS. A ReceiptHeader is a plain value.
type ReceiptHeader struct {
	Status      string    `json:"status"`
	Method      string    `json:"method"`
	Timestamp   time.Time `json:"timestamp"`
	Reference   string    `json:"reference"`
	ChallengeID string    `json:"challengeId,omitempty"`
	ExternalID  string    `json:"externalId,omitempty"`
	// Amount and Currency are the settled charge (base units, ISO 4217).
	Amount   string `json:"amount,omitempty"`
	Currency string `json:"currency,omitempty"`
	Signed   string `json:"receipt,omitempty"`
}

// ReceiptStatusSuccess is the only receipt status the draft defines.
const ReceiptStatusSuccess = "success"

type receiptHeaderWire struct {
	Status      string `json:"status"`
	Method      string `json:"method,omitempty"`
	Timestamp   string `json:"timestamp"`
	Reference   string `json:"reference"`
	ChallengeID string `json:"challengeId,omitempty"`
	ExternalID  string `json:"externalId,omitempty"`
	Amount      string `json:"amount,omitempty"`
	Currency    string `json:"currency,omitempty"`
	Signed      string `json:"receipt,omitempty"`
}

// receiptTimeLayout is RFC 3339 in UTC with milliseconds, the form other
// implementations of the draft emit.
const receiptTimeLayout = "2006-01-02T15:04:05.000Z"

// FormatReceiptHeader renders r as a Payment-Receipt value: base64url (no
// padding) of its JSON.
func FormatReceiptHeader(r *ReceiptHeader) (string, error) {
	if r.Status != ReceiptStatusSuccess {
		return "", ErrMalformedReceipt.With(nil, "status %q is not %q", r.Status, ReceiptStatusSuccess)
	}
	if r.Reference == "" || r.Timestamp.IsZero() {
		return "", ErrMalformedReceipt.With(nil, "reference and timestamp are required")
	}
	j, err := json.Marshal(receiptHeaderWire{
		Status: r.Status, Method: r.Method, Timestamp: r.Timestamp.UTC().Format(receiptTimeLayout),
		Reference: r.Reference, ChallengeID: r.ChallengeID, ExternalID: r.ExternalID,
		Amount: r.Amount, Currency: r.Currency, Signed: r.Signed,
	})
	if err != nil {
		return "", ErrMalformedReceipt.With(err, "encode receipt")
	}
	v := paywire.HdrB64.EncodeToString(j)
	if len(v) > MaxHeaderBytes {
		return "", ErrMalformedReceipt.With(nil, "receipt is %d bytes, above the %d-byte limit", len(v), MaxHeaderBytes)
	}
	return v, nil
}

// ParseReceiptHeader parses a Payment-Receipt value. It requires status
// "success", a reference and an RFC 3339 timestamp; unknown members are
// ignored. Errors wrap ErrMalformedReceipt.
func ParseReceiptHeader(value string) (*ReceiptHeader, error) {
	value = strings.TrimSpace(value)
	if len(value) > MaxHeaderBytes {
		return nil, ErrMalformedReceipt.With(nil, "value is %d bytes, above the %d-byte limit", len(value), MaxHeaderBytes)
	}
	raw, err := paywire.HdrDecodeB64(value)
	if err != nil {
		return nil, ErrMalformedReceipt.With(err, "not base64url")
	}
	if err := hdrCheckObject(raw); err != nil {
		return nil, ErrMalformedReceipt.With(err, "not a JSON object")
	}
	var w receiptHeaderWire
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, ErrMalformedReceipt.With(err, "members have the wrong types")
	}
	if w.Status != ReceiptStatusSuccess {
		return nil, ErrMalformedReceipt.With(nil, "status %q is not %q", w.Status, ReceiptStatusSuccess)
	}
	if w.Reference == "" {
		return nil, ErrMalformedReceipt.With(nil, "reference is missing")
	}
	ts, err := time.Parse(time.RFC3339Nano, w.Timestamp)
	if err != nil {
		return nil, ErrMalformedReceipt.With(err, "timestamp %q is not RFC 3339", w.Timestamp)
	}
	return &ReceiptHeader{
		Status: w.Status, Method: w.Method, Timestamp: ts.UTC(), Reference: w.Reference,
		ChallengeID: w.ChallengeID, ExternalID: w.ExternalID, Amount: w.Amount, Currency: w.Currency, Signed: w.Signed,
	}, nil
}

// ReceiptFromResponse parses the Payment-Receipt header of resp. It
// returns an error matching ErrMalformedReceipt when the header is absent
// or invalid.
func ReceiptFromResponse(resp *http.Response) (*ReceiptHeader, error) {
	v := resp.Header.Get(ReceiptHeaderName)
	if v == "" {
		return nil, ErrMalformedReceipt.With(nil, "response has no %s header", ReceiptHeaderName)
	}
	return ParseReceiptHeader(v)
}

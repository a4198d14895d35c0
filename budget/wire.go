package budget

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/agentprov/agentprov/internal/problem"
)

// ProtocolVersion is the protocol version of the documents in this package.
const ProtocolVersion = "0.1"

// MaxUsageDocumentSize bounds a usage report body read from the network.
const MaxUsageDocumentSize = 16 << 10

// UsageDocument is the wire form of a usage report billed in arrears, sent
// by a provider to the orchestrator (PROTOCOL.md §6.8).
type UsageDocument struct {
	ProtocolVersion string `json:"protocol_version"`
	// UsageID identifies the charge at the provider; it is the idempotency
	// key, so a resent report is applied once.
	UsageID  string `json:"usage_id"`
	Project  string `json:"project"`
	Provider string `json:"provider"`
	Service  string `json:"service,omitempty"`
	Amount   Money  `json:"amount"`
	// OccurredAt is when the usage happened (RFC 3339); it picks the window.
	OccurredAt time.Time `json:"occurred_at"`
}

// ParseUsageDocument decodes and validates a usage report body. It refuses
// bodies over MaxUsageDocumentSize, another major protocol version, missing
// or malformed members, non-integer amounts and trailing data; unknown
// members are ignored. The result is ready for Ledger.ReportUsage, which
// still checks the currency and the time.
func ParseUsageDocument(data []byte) (UsageReport, error) {
	if len(data) > MaxUsageDocumentSize {
		return UsageReport{}, errorf(ErrInvalidRequest, "usage report: larger than %d bytes", MaxUsageDocumentSize)
	}
	var d UsageDocument
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		return UsageReport{}, errorf(ErrInvalidRequest, "usage report: %v", jsonReason(err))
	}
	if dec.More() {
		return UsageReport{}, errorf(ErrInvalidRequest, "usage report: data after the JSON object")
	}
	if d.ProtocolVersion == "" {
		return UsageReport{}, errorf(ErrInvalidRequest, "usage report: protocol_version is missing")
	}
	if major, _, _ := strings.Cut(d.ProtocolVersion, "."); major != "0" {
		return UsageReport{}, errorf(ErrInvalidRequest, "usage report: protocol_version %q is not supported", d.ProtocolVersion)
	}
	r := UsageReport{Key: d.UsageID, Scope: Scope{Project: d.Project, Provider: d.Provider}, Service: d.Service, Amount: d.Amount, At: d.OccurredAt}
	if err := checkKey(r.Key); err != nil {
		return UsageReport{}, errorf(ErrInvalidRequest, "usage report: usage_id: must be 1–255 printable ASCII bytes")
	}
	if err := checkScope(r.Scope); err != nil {
		return UsageReport{}, err
	}
	if r.Service != "" && !validServiceID(r.Service) {
		return UsageReport{}, errorf(ErrInvalidRequest, "usage report: service %q: not a service id", r.Service)
	}
	if !validCurrency(r.Amount.Currency) {
		return UsageReport{}, errorf(ErrInvalidRequest, "usage report: amount.currency %q: not an ISO 4217 code", r.Amount.Currency)
	}
	if r.Amount.Amount <= 0 {
		return UsageReport{}, errorf(ErrInvalidAmount, "usage report: amount.amount %d: must be positive", r.Amount.Amount)
	}
	if r.At.IsZero() {
		return UsageReport{}, errorf(ErrInvalidRequest, "usage report: occurred_at is missing")
	}
	r.At = r.At.UTC()
	return r, nil
}

// jsonReason names what was wrong without echoing the input.
func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "member " + te.Field + ": wrong type (amounts are integers in minor units)"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "malformed JSON"
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return "malformed time (want RFC 3339)"
	}
	return "malformed document"
}

// Document returns the wire form of r.
func (r UsageReport) Document() UsageDocument {
	return UsageDocument{ProtocolVersion: ProtocolVersion, UsageID: r.Key, Project: r.Scope.Project,
		Provider: r.Scope.Provider, Service: r.Service, Amount: r.Amount, OccurredAt: r.At.UTC()}
}

// CapProblem is the "cap" member of a cap_exceeded problem body: which cap
// refused and how much room is left.
type CapProblem struct {
	Counter   Counter `json:"counter"`
	Limit     Money   `json:"limit"`
	Used      int64   `json:"used"`
	Requested int64   `json:"requested"`
	Remaining int64   `json:"remaining"`
}

// Problem is the problem+json body (RFC 9457 with the protocol's code) of a
// budget error.
type Problem struct {
	problem.Details
	Cap *CapProblem `json:"cap,omitempty"`
}

// ProblemFor returns the problem body for err. Details never carry a store's
// internal error text.
func ProblemFor(err error) Problem {
	code, status := Code(err)
	p := Problem{Details: problem.Details{Type: problem.TypeBase + code, Title: http.StatusText(status), Status: status, Code: code}}
	var ce *CapError
	var e *Error
	switch {
	case errors.As(err, &ce):
		p.Detail = "the reservation would exceed a spending cap"
		p.Cap = &CapProblem{Counter: ce.Counter, Limit: ce.Limit, Used: ce.Used, Requested: ce.Requested, Remaining: ce.Remaining()}
	case errors.As(err, &e) && e.Code != ErrStore.Code:
		p.Detail = e.Detail
	}
	return p
}

// WriteProblem answers an HTTP request with the problem body for err.
func WriteProblem(w http.ResponseWriter, err error) {
	p := ProblemFor(err)
	h := w.Header()
	h.Set("Content-Type", problem.MediaType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

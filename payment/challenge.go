package payment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paywire"
)

// Challenge is one "WWW-Authenticate: Payment" challenge
// (draft-ryan-httpauth-payment §5.1). A provider answers an unpaid request
// with one; a client echoes it back inside its Credential.
//
// A Challenge is a plain value: safe for concurrent reads, not for
// concurrent mutation.
type Challenge struct {
	// ID binds the challenge to its parameters (an HMAC for challenges a
	// Paywall issues; opaque to clients).
	ID string
	// Realm is the protection space, typically the provider's API host.
	Realm string
	// Method is the payment method id; this package's is MethodID.
	Method string
	// Intent is the payment intent; this package implements IntentCharge.
	Intent string
	// Request is the decoded "request" parameter when Intent is "charge".
	Request ChallengeRequest
	// RequestB64 is the "request" parameter as sent: base64url (no padding)
	// of the JCS-canonical request JSON. It is what the challenge id binds.
	RequestB64 string
	// Expires is when the challenge stops being accepted (zero: no expiry).
	Expires time.Time
	// Digest optionally binds the request body (RFC 9530 form, "sha-256=:…:").
	Digest string
	// Description is human-readable text; never trust it for decisions.
	Description string
	// Opaque is server state echoed by the client (a flat string map).
	Opaque map[string]string

	// expiresRaw and opaqueB64 keep the exact wire strings of a parsed
	// challenge so that the echo in a Credential reproduces them byte for
	// byte (the challenge id is an HMAC over the wire strings).
	expiresRaw string
	opaqueB64  string
}

// ChallengeRequest is the request object of the "charge" intent
// (draft-payment-intent-charge). Amount is a decimal string of base
// (minor) units, never a float. For the agentprov method Currency is an
// upper-case ISO 4217 code, Recipient the provider id and
// MethodDetails["service"] the service ref being paid for. A plain value.
type ChallengeRequest struct {
	Amount        string         `json:"amount"`
	Currency      string         `json:"currency"`
	Recipient     string         `json:"recipient,omitempty"`
	Description   string         `json:"description,omitempty"`
	ExternalID    string         `json:"externalId,omitempty"`
	MethodDetails map[string]any `json:"methodDetails,omitempty"`
}

// Money converts the request's amount and currency to budget.Money,
// checking that the amount is a canonical non-negative integer that fits
// int64 and that the currency is three upper-case letters.
func (r ChallengeRequest) Money() (budget.Money, error) {
	a := r.Amount
	if a == "" || len(a) > 19 || (len(a) > 1 && a[0] == '0') {
		return budget.Money{}, ErrMalformedChallenge.With(nil, "amount %q is not a canonical integer of base units", a)
	}
	for i := 0; i < len(a); i++ {
		if a[i] < '0' || a[i] > '9' {
			return budget.Money{}, ErrMalformedChallenge.With(nil, "amount %q is not a canonical integer of base units", a)
		}
	}
	n, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return budget.Money{}, ErrMalformedChallenge.With(err, "amount %q does not fit in 64 bits", a)
	}
	if !paywire.HdrIsCurrency(r.Currency) {
		return budget.Money{}, ErrMalformedChallenge.With(nil, "currency %q is not an upper-case ISO 4217 code", r.Currency)
	}
	return budget.Money{Amount: n, Currency: r.Currency}, nil
}

// Service returns MethodDetails["service"] when it is a string.
func (r ChallengeRequest) Service() string {
	s, _ := r.MethodDetails["service"].(string)
	return s
}

// object returns r as a generic JSON object, omitting empty members, ready
// for canonicalisation.
func (r ChallengeRequest) object() map[string]any {
	m := map[string]any{"amount": r.Amount, "currency": r.Currency}
	if r.Recipient != "" {
		m["recipient"] = r.Recipient
	}
	if r.Description != "" {
		m["description"] = r.Description
	}
	if r.ExternalID != "" {
		m["externalId"] = r.ExternalID
	}
	if len(r.MethodDetails) > 0 {
		m["methodDetails"] = r.MethodDetails
	}
	return m
}

// EncodeRequest returns the "request" parameter for r: base64url (no
// padding) of its JCS-canonical JSON.
func EncodeRequest(r ChallengeRequest) (string, error) {
	s, err := paywire.JCSB64(r.object())
	if err != nil {
		return "", ErrMalformedChallenge.With(err, "request cannot be canonicalised")
	}
	return s, nil
}

// decodeChallengeRequest decodes a "request" parameter of the charge
// intent. Members must have the right types; missing ones are left empty
// (other implementations omit currency in places), and Money reports them.
func decodeChallengeRequest(requestB64 string) (ChallengeRequest, error) {
	raw, err := paywire.HdrDecodeB64(requestB64)
	if err != nil {
		return ChallengeRequest{}, fmt.Errorf("request is not base64url: %w", err)
	}
	if err := hdrCheckObject(raw); err != nil {
		return ChallengeRequest{}, fmt.Errorf("request is not a JSON object: %w", err)
	}
	var cr ChallengeRequest
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&cr); err != nil {
		return ChallengeRequest{}, fmt.Errorf("charge request: %w", err)
	}
	return cr, nil
}

// hdrFormatExpires is the RFC 3339 form used in the "expires" parameter.
func hdrFormatExpires(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// ExpiresParam returns the "expires" parameter as it is (or was) on the
// wire; empty when the challenge has no expiry.
func (c *Challenge) ExpiresParam() string {
	if c.expiresRaw != "" {
		return c.expiresRaw
	}
	if c.Expires.IsZero() {
		return ""
	}
	return hdrFormatExpires(c.Expires)
}

// SetOpaqueParam sets the "opaque" parameter as it goes on the wire (the
// base64url of the JCS form of the server's state), for a server that
// encoded its opaque state itself (package payment/paywall); OpaqueParam
// then returns it as is.
func (c *Challenge) SetOpaqueParam(opaque string) { c.opaqueB64 = opaque }

// OpaqueParam returns the "opaque" parameter (base64url of the JCS form of
// Opaque) as it is (or was) on the wire; empty when Opaque is nil.
func (c *Challenge) OpaqueParam() (string, error) {
	if c.opaqueB64 != "" {
		return c.opaqueB64, nil
	}
	if c.Opaque == nil {
		return "", nil
	}
	s, err := paywire.JCSB64(c.Opaque)
	if err != nil {
		return "", ErrMalformedChallenge.With(err, "opaque cannot be canonicalised")
	}
	return s, nil
}

// requestParam returns RequestB64, computing it from Request when empty.
func (c *Challenge) requestParam() (string, error) {
	if c.RequestB64 != "" {
		return c.RequestB64, nil
	}
	return EncodeRequest(c.Request)
}

// FormatChallenge renders c as one WWW-Authenticate field value, all
// parameters as quoted-strings in the order id, realm, method, intent,
// request, expires, digest, description, opaque. It fails when a required
// parameter is empty or a value cannot be carried in a header.
func FormatChallenge(c *Challenge) (string, error) {
	e, err := c.Echo()
	if err != nil {
		return "", err
	}
	for _, p := range []struct{ n, v string }{{"id", e.ID}, {"realm", e.Realm}, {"method", e.Method}, {"intent", e.Intent}, {"request", e.Request}} {
		if p.v == "" {
			return "", ErrMalformedChallenge.With(nil, "parameter %s is required", p.n)
		}
	}
	if !isMethodID(c.Method) {
		return "", ErrMalformedChallenge.With(nil, "method %q is not 1*LOWERALPHA", c.Method)
	}
	var b strings.Builder
	b.WriteString(SchemeName)
	sep := " "
	for _, p := range []struct{ n, v string }{
		{"id", e.ID}, {"realm", e.Realm}, {"method", e.Method}, {"intent", e.Intent}, {"request", e.Request},
		{"expires", e.Expires}, {"digest", e.Digest}, {"description", e.Description}, {"opaque", e.Opaque},
	} {
		if p.v == "" {
			continue
		}
		q, err := paywire.QuoteParam(p.n, p.v)
		if err != nil {
			return "", ErrMalformedChallenge.With(err, "cannot format challenge")
		}
		b.WriteString(sep)
		b.WriteString(p.n)
		b.WriteByte('=')
		b.WriteString(q)
		sep = ", "
	}
	if b.Len() > MaxHeaderBytes {
		return "", ErrMalformedChallenge.With(nil, "challenge is %d bytes, above the %d-byte limit", b.Len(), MaxHeaderBytes)
	}
	return b.String(), nil
}

func isMethodID(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < 'a' || m[i] > 'z' {
			return false
		}
	}
	return true
}

// ParseChallenges extracts the Payment challenges from WWW-Authenticate
// field values (several values, and several challenges per value, are
// allowed; other schemes are skipped). Each value is limited to
// MaxHeaderBytes. It returns an error wrapping ErrMalformedChallenge when
// a value does not parse as RFC 9110 challenges or a Payment challenge is
// invalid, and ErrNoChallenge when no Payment challenge is present.
// Unknown parameters are ignored. The request of a "charge" challenge is
// decoded into Request; other intents keep only RequestB64.
func ParseChallenges(values []string) ([]Challenge, error) {
	var out []Challenge
	for _, v := range values {
		if len(v) > MaxHeaderBytes {
			return nil, ErrMalformedChallenge.With(nil, "WWW-Authenticate value is %d bytes, above the %d-byte limit", len(v), MaxHeaderBytes)
		}
		chs, err := parseAuthHeader(v)
		if err != nil {
			return nil, ErrMalformedChallenge.With(err, "WWW-Authenticate does not parse")
		}
		for _, ac := range chs {
			if !strings.EqualFold(ac.scheme, SchemeName) {
				continue
			}
			c, err := challengeFromParams(ac)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoChallenge.With(nil, "no Payment challenge in WWW-Authenticate")
	}
	return out, nil
}

func challengeFromParams(ac authChallenge) (Challenge, error) {
	if ac.params == nil {
		return Challenge{}, ErrMalformedChallenge.With(nil, "Payment challenge has no auth-params")
	}
	p := ac.params
	c := Challenge{
		ID: p["id"], Realm: p["realm"], Method: p["method"], Intent: p["intent"], RequestB64: p["request"],
		Digest: p["digest"], Description: p["description"],
	}
	for _, n := range []string{"id", "realm", "method", "intent", "request"} {
		if p[n] == "" {
			return Challenge{}, ErrMalformedChallenge.With(nil, "Payment challenge lacks %s", n)
		}
	}
	if !isMethodID(c.Method) {
		return Challenge{}, ErrMalformedChallenge.With(nil, "method %q is not 1*LOWERALPHA", c.Method)
	}
	raw, err := paywire.HdrDecodeB64(c.RequestB64)
	if err != nil {
		return Challenge{}, ErrMalformedChallenge.With(err, "request is not base64url")
	}
	if err := hdrCheckObject(raw); err != nil {
		return Challenge{}, ErrMalformedChallenge.With(err, "request is not a JSON object")
	}
	if c.Intent == IntentCharge {
		cr, err := decodeChallengeRequest(c.RequestB64)
		if err != nil {
			return Challenge{}, ErrMalformedChallenge.With(err, "charge request is invalid")
		}
		c.Request = cr
	}
	if e := p["expires"]; e != "" {
		t, err := time.Parse(time.RFC3339Nano, e)
		if err != nil {
			return Challenge{}, ErrMalformedChallenge.With(err, "expires %q is not RFC 3339", e)
		}
		c.Expires, c.expiresRaw = t, e
	}
	if o, ok := p["opaque"]; ok {
		m, err := DecodeOpaque(o)
		if err != nil {
			return Challenge{}, err
		}
		c.Opaque, c.opaqueB64 = m, o
	}
	return c, nil
}

// DecodeOpaque decodes an "opaque" parameter: base64url of a JSON object
// whose members are all strings.
func DecodeOpaque(o string) (map[string]string, error) {
	raw, err := paywire.HdrDecodeB64(o)
	if err != nil {
		return nil, ErrMalformedChallenge.With(err, "opaque is not base64url")
	}
	obj, err := hdrDecodeObject(raw)
	if err != nil {
		return nil, ErrMalformedChallenge.With(err, "opaque is not a JSON object")
	}
	m := make(map[string]string, len(obj))
	for k, v := range obj {
		s, ok := v.(string)
		if !ok {
			return nil, ErrMalformedChallenge.With(nil, "opaque member %q is not a string", k)
		}
		m[k] = s
	}
	return m, nil
}

package payment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agentprov/agentprov/internal/paywire"
)

// ChallengeEcho is the challenge as a client echoes it inside a Credential:
// every member is the exact wire string of the challenge parameter, so
// that the server can recompute the challenge id over them. A plain value.
type ChallengeEcho struct {
	ID          string `json:"id"`
	Realm       string `json:"realm"`
	Method      string `json:"method"`
	Intent      string `json:"intent"`
	Request     string `json:"request"`
	Description string `json:"description,omitempty"`
	Digest      string `json:"digest,omitempty"`
	Expires     string `json:"expires,omitempty"`
	Opaque      string `json:"opaque,omitempty"`
}

// Echo returns the echo of c for a Credential.
func (c *Challenge) Echo() (ChallengeEcho, error) {
	req, err := c.requestParam()
	if err != nil {
		return ChallengeEcho{}, err
	}
	opaque, err := c.OpaqueParam()
	if err != nil {
		return ChallengeEcho{}, err
	}
	return ChallengeEcho{
		ID: c.ID, Realm: c.Realm, Method: c.Method, Intent: c.Intent, Request: req,
		Description: c.Description, Digest: c.Digest, Expires: c.ExpiresParam(), Opaque: opaque,
	}, nil
}

// Credential is the value of "Authorization: Payment <b64url JSON>"
// (draft-ryan-httpauth-payment §5.2). For the agentprov method the payload
// is {"token": "<agentprov-payment+jwt>"}.
//
// The payload is a bearer secret: Credential's String and Format never
// print it. A Credential is a plain value, safe for concurrent reads.
type Credential struct {
	Challenge ChallengeEcho
	// Source optionally identifies the payer (the draft recommends a DID).
	Source string
	// Payload is the method-specific JSON object.
	Payload json.RawMessage
}

type credentialWire struct {
	Challenge ChallengeEcho   `json:"challenge"`
	Source    string          `json:"source,omitempty"`
	Payload   json.RawMessage `json:"payload"`
}

type credTokenPayload struct {
	Token string `json:"token"`
}

// NewTokenCredential builds the agentprov credential answering c with a
// payment token.
func NewTokenCredential(c *Challenge, token string) (*Credential, error) {
	if token == "" {
		return nil, ErrMalformedCredential.With(nil, "token is empty")
	}
	e, err := c.Echo()
	if err != nil {
		return nil, err
	}
	p, err := json.Marshal(credTokenPayload{Token: token})
	if err != nil {
		return nil, ErrMalformedCredential.With(err, "encode payload")
	}
	return &Credential{Challenge: e, Payload: p}, nil
}

// Token returns payload.token, the agentprov payment token.
func (c *Credential) Token() (string, error) {
	var p credTokenPayload
	if err := json.Unmarshal(c.Payload, &p); err != nil || p.Token == "" {
		return "", ErrMalformedCredential.With(err, "payload has no token")
	}
	return p.Token, nil
}

// String describes c without its payload.
func (c Credential) String() string {
	return fmt.Sprintf("payment.Credential{challenge:%q method:%q intent:%q source:%q payload:[REDACTED]}",
		c.Challenge.ID, c.Challenge.Method, c.Challenge.Intent, c.Source)
}

// Format makes every fmt verb print String, so %v, %+v and %#v never leak
// the payload into logs.
func (c Credential) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// FormatCredential renders c as an Authorization field value:
// "Payment " + base64url(no pad) of its JSON.
func FormatCredential(c *Credential) (string, error) {
	if err := c.validate(); err != nil {
		return "", err
	}
	var payload bytes.Buffer
	if err := json.Compact(&payload, c.Payload); err != nil {
		return "", ErrMalformedCredential.With(err, "payload is not JSON")
	}
	// No HTML escaping: the payload must come back byte for byte.
	var j bytes.Buffer
	enc := json.NewEncoder(&j)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(credentialWire{Challenge: c.Challenge, Source: c.Source, Payload: payload.Bytes()}); err != nil {
		return "", ErrMalformedCredential.With(err, "encode credential")
	}
	v := SchemeName + " " + paywire.HdrB64.EncodeToString(bytes.TrimRight(j.Bytes(), "\n"))
	if len(v) > MaxHeaderBytes {
		return "", ErrMalformedCredential.With(nil, "credential is %d bytes, above the %d-byte limit", len(v), MaxHeaderBytes)
	}
	return v, nil
}

func (c *Credential) validate() error {
	e := &c.Challenge
	for _, p := range []struct{ n, v string }{{"id", e.ID}, {"realm", e.Realm}, {"method", e.Method}, {"intent", e.Intent}, {"request", e.Request}} {
		if p.v == "" {
			return ErrMalformedCredential.With(nil, "challenge.%s is required", p.n)
		}
	}
	if !isMethodID(e.Method) {
		return ErrMalformedCredential.With(nil, "challenge.method %q is not 1*LOWERALPHA", e.Method)
	}
	p := bytes.TrimSpace(c.Payload)
	if len(p) == 0 || p[0] != '{' {
		return ErrMalformedCredential.With(nil, "payload must be a JSON object")
	}
	if err := hdrCheckObject(p); err != nil {
		return ErrMalformedCredential.With(err, "payload must be a JSON object")
	}
	return nil
}

// ParseCredential parses an Authorization field value and returns its
// Payment credential. Other schemes in the same value are skipped. Errors
// wrap ErrMalformedCredential (ErrPaymentRequired when there is no Payment
// credential at all). The value is limited to MaxHeaderBytes.
func ParseCredential(value string) (*Credential, error) {
	if len(value) > MaxHeaderBytes {
		return nil, ErrMalformedCredential.With(nil, "Authorization value is %d bytes, above the %d-byte limit", len(value), MaxHeaderBytes)
	}
	chs, err := parseAuthHeader(value)
	if err != nil {
		return nil, ErrMalformedCredential.With(err, "Authorization does not parse")
	}
	var ac *authChallenge
	for i := range chs {
		if strings.EqualFold(chs[i].scheme, SchemeName) {
			if ac != nil {
				return nil, ErrMalformedCredential.With(nil, "more than one Payment credential")
			}
			ac = &chs[i]
		}
	}
	if ac == nil {
		return nil, ErrPaymentRequired.With(nil, "no Payment credential")
	}
	if ac.token68 == "" {
		return nil, ErrMalformedCredential.With(nil, "Payment credential must be a single base64url value")
	}
	raw, err := paywire.HdrDecodeB64(ac.token68)
	if err != nil {
		return nil, ErrMalformedCredential.With(err, "credential is not base64url")
	}
	if err := hdrCheckObject(raw); err != nil {
		return nil, ErrMalformedCredential.With(err, "credential is not a JSON object")
	}
	var w struct {
		Challenge *struct {
			ID          *string         `json:"id"`
			Realm       *string         `json:"realm"`
			Method      *string         `json:"method"`
			Intent      *string         `json:"intent"`
			Request     *string         `json:"request"`
			Description string          `json:"description"`
			Digest      string          `json:"digest"`
			Expires     string          `json:"expires"`
			Opaque      json.RawMessage `json:"opaque"`
		} `json:"challenge"`
		Source  string          `json:"source"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, ErrMalformedCredential.With(err, "credential members have the wrong types")
	}
	if w.Challenge == nil {
		return nil, ErrMalformedCredential.With(nil, "credential lacks challenge")
	}
	ch := w.Challenge
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	c := &Credential{
		Challenge: ChallengeEcho{
			ID: str(ch.ID), Realm: str(ch.Realm), Method: str(ch.Method), Intent: str(ch.Intent), Request: str(ch.Request),
			Description: ch.Description, Digest: ch.Digest, Expires: ch.Expires,
		},
		Source:  w.Source,
		Payload: w.Payload,
	}
	if o := bytes.TrimSpace(ch.Opaque); len(o) > 0 && string(o) != "null" {
		switch o[0] {
		case '"':
			if err := json.Unmarshal(o, &c.Challenge.Opaque); err != nil {
				return nil, ErrMalformedCredential.With(err, "challenge.opaque")
			}
			if _, err := DecodeOpaque(c.Challenge.Opaque); err != nil {
				return nil, ErrMalformedCredential.With(err, "challenge.opaque")
			}
		case '{':
			// Some implementations echo opaque decoded; re-encode it canonically.
			var m map[string]string
			if err := json.Unmarshal(o, &m); err != nil {
				return nil, ErrMalformedCredential.With(err, "challenge.opaque must map strings to strings")
			}
			s, err := paywire.JCSB64(m)
			if err != nil {
				return nil, ErrMalformedCredential.With(err, "challenge.opaque")
			}
			c.Challenge.Opaque = s
		default:
			return nil, ErrMalformedCredential.With(nil, "challenge.opaque must be a string")
		}
	}
	if len(bytes.TrimSpace(c.Payload)) == 0 || string(bytes.TrimSpace(c.Payload)) == "null" {
		return nil, ErrMalformedCredential.With(nil, "credential lacks payload")
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, c.Payload) // validated above
	c.Payload = compact.Bytes()
	return c, nil
}

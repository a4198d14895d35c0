package payment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// SchemeName is the HTTP authentication scheme of draft-ryan-httpauth-payment.
const SchemeName = "Payment"

// MethodID is the payment method this package implements: the credential
// carries an agentprov payment token (typ agentprov-payment+jwt) minted by
// the payer's orchestrator. Method ids are 1*LOWERALPHA in the draft's
// registry.
const MethodID = "agentprov"

// IntentCharge is the one-off "charge" intent (draft-payment-intent-charge).
const IntentCharge = "charge"

// MaxHeaderBytes bounds every Payment header value this package parses
// (WWW-Authenticate, Authorization, Payment-Receipt). The draft asks
// challenges to stay under 8 KB; tokens and receipts fit well below it.
const MaxHeaderBytes = 8 << 10

// authChallenge is one RFC 9110 §11 challenge or credential: a scheme and
// either a token68 or a list of auth-params (names lower-cased).
type authChallenge struct {
	scheme  string
	token68 string
	params  map[string]string
}

func isTChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", c) >= 0
}

type authLexer struct {
	s string
	i int
}

func (l *authLexer) skipOWS() {
	for l.i < len(l.s) && (l.s[l.i] == ' ' || l.s[l.i] == '\t') {
		l.i++
	}
}

func (l *authLexer) token() string {
	start := l.i
	for l.i < len(l.s) && isTChar(l.s[l.i]) {
		l.i++
	}
	return l.s[start:l.i]
}

func (l *authLexer) quoted() (string, error) {
	// l.s[l.i] == '"'
	l.i++
	var b strings.Builder
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case c == '"':
			l.i++
			return b.String(), nil
		case c == '\\':
			if l.i+1 >= len(l.s) {
				return "", fmt.Errorf("unterminated quoted-pair")
			}
			n := l.s[l.i+1]
			if n != '\t' && (n < 0x20 || n == 0x7f) {
				return "", fmt.Errorf("control character in quoted-pair at offset %d", l.i+1)
			}
			b.WriteByte(n)
			l.i += 2
		case c != '\t' && (c < 0x20 || c == 0x7f):
			return "", fmt.Errorf("control character in quoted-string at offset %d", l.i)
		default:
			b.WriteByte(c)
			l.i++
		}
	}
	return "", fmt.Errorf("unterminated quoted-string")
}

// parseAuthHeader parses one field value of WWW-Authenticate or
// Authorization (RFC 9110 §11.2, §11.6.1): a comma-separated list of
// challenges, each "scheme [ token68 / #auth-param ]". Empty list elements
// are allowed, parameter names are case-insensitive and may occur only once
// per challenge, unknown parameters are kept for the caller to ignore.
func parseAuthHeader(s string) ([]authChallenge, error) {
	l := &authLexer{s: s}
	var out []authChallenge
	for {
		// Skip empty list elements.
		for {
			l.skipOWS()
			if l.i < len(l.s) && l.s[l.i] == ',' {
				l.i++
				continue
			}
			break
		}
		if l.i >= len(l.s) {
			return out, nil
		}
		scheme := l.token()
		if scheme == "" {
			return nil, fmt.Errorf("expected auth-scheme at offset %d", l.i)
		}
		ch := authChallenge{scheme: scheme}
		if l.i < len(l.s) && l.s[l.i] != ' ' && l.s[l.i] != ',' {
			return nil, fmt.Errorf("unexpected %q after auth-scheme at offset %d", l.s[l.i], l.i)
		}
		l.skipOWS()
		if l.i >= len(l.s) || l.s[l.i] == ',' {
			out = append(out, ch)
			continue
		}
		// token68: token68 chars, then "="s, then end of element.
		start := l.i
		j := l.i
		for j < len(l.s) && isToken68Char(l.s[j]) {
			j++
		}
		k := j
		for k < len(l.s) && l.s[k] == '=' {
			k++
		}
		m := k
		for m < len(l.s) && (l.s[m] == ' ' || l.s[m] == '\t') {
			m++
		}
		if j > start && (m >= len(l.s) || l.s[m] == ',') {
			ch.token68 = l.s[start:k]
			l.i = m
			out = append(out, ch)
			continue
		}
		ch.params = map[string]string{}
		for {
			name := l.token()
			if name == "" {
				return nil, fmt.Errorf("expected auth-param name at offset %d", l.i)
			}
			l.skipOWS()
			if l.i >= len(l.s) || l.s[l.i] != '=' {
				return nil, fmt.Errorf("expected '=' after auth-param %q", name)
			}
			l.i++
			l.skipOWS()
			var val string
			if l.i < len(l.s) && l.s[l.i] == '"' {
				v, err := l.quoted()
				if err != nil {
					return nil, fmt.Errorf("auth-param %q: %w", name, err)
				}
				val = v
			} else {
				val = l.token()
				if val == "" {
					return nil, fmt.Errorf("auth-param %q: empty or invalid token value", name)
				}
			}
			key := strings.ToLower(name)
			if _, dup := ch.params[key]; dup {
				return nil, fmt.Errorf("auth-param %q occurs twice", name)
			}
			ch.params[key] = val
			l.skipOWS()
			if l.i >= len(l.s) {
				out = append(out, ch)
				return out, nil
			}
			if l.s[l.i] != ',' {
				return nil, fmt.Errorf("unexpected %q at offset %d", l.s[l.i], l.i)
			}
			// After a comma comes another auth-param of this challenge
			// (token "=") or the next challenge (token SP / end / comma).
			for l.i < len(l.s) && (l.s[l.i] == ',' || l.s[l.i] == ' ' || l.s[l.i] == '\t') {
				l.i++
			}
			save := l.i
			t := l.token()
			l.skipOWS()
			if t != "" && l.i < len(l.s) && l.s[l.i] == '=' {
				l.i = save
				continue
			}
			l.i = save
			break
		}
		out = append(out, ch)
	}
}

// hdrCheckObject reports whether b is exactly one JSON object (surrounding
// white space allowed), like hdrDecodeObject but without building the map:
// most callers only validate, then decode into a struct, and the map was
// a measurable share of a paid request.
func hdrCheckObject(b []byte) error {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("not a JSON object")
	}
	if !json.Valid(t) {
		return fmt.Errorf("not a single valid JSON object")
	}
	return nil
}

// hdrDecodeObject decodes b (a JSON object) keeping numbers exact.
func hdrDecodeObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	if d.More() {
		return nil, fmt.Errorf("trailing data after JSON object")
	}
	if _, err := d.Token(); err == nil {
		return nil, fmt.Errorf("trailing data after JSON object")
	}
	return m, nil
}

// Package webform holds what agentprov's server-rendered pages share: CSRF
// protection (Go's cross-origin check in front of a signed double-submit
// token bound to a cookie), the security headers every page sends, and
// amounts formatted for people. It is internal: the pages that use it
// (provision.DevicePage, the example orchestrator's spend page) are the API.
package webform

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// FieldName is the hidden form field carrying the CSRF token.
const FieldName = "csrf_token"

// ErrCSRF reports a state-changing request without a valid token.
var ErrCSRF = errors.New("webform: missing or invalid CSRF token")

// CSRF issues and checks form tokens. The token is an HMAC of a random
// per-browser value kept in a SameSite=Strict, HttpOnly cookie, so a page
// on another origin can neither read nor forge it; http.CrossOriginProtection
// refuses cross-origin POSTs before the token is even looked at. A CSRF is
// safe for concurrent use.
type CSRF struct {
	key    []byte
	cookie string
	cop    *http.CrossOriginProtection
}

// NewCSRF returns a CSRF using cookie as its cookie name. A nil key draws a
// random one: tokens then last as long as the process.
func NewCSRF(cookie string, key []byte) *CSRF {
	if key == nil {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	return &CSRF{key: append([]byte(nil), key...), cookie: cookie, cop: http.NewCrossOriginProtection()}
}

func (c *CSRF) mac(v string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("agentprov-csrf\x00" + v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Token returns the token to put in FieldName of a form rendered for r,
// setting the cookie on w when r has none.
func (c *CSRF) Token(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(c.cookie); err == nil && len(ck.Value) >= 32 && len(ck.Value) <= 64 {
		return c.mac(ck.Value)
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: c.cookie, Value: v, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return c.mac(v)
}

// Check verifies a parsed POST form of r: the request must not be
// cross-origin, and its token must match its cookie.
func (c *CSRF) Check(r *http.Request) error {
	if err := c.cop.Check(r); err != nil {
		return fmt.Errorf("%w: %v", ErrCSRF, err)
	}
	ck, err := r.Cookie(c.cookie)
	if err != nil {
		return ErrCSRF
	}
	got := r.PostForm.Get(FieldName)
	if got == "" || !hmac.Equal([]byte(got), []byte(c.mac(ck.Value))) {
		return ErrCSRF
	}
	return nil
}

// SetHeaders sets the headers every page sends: no caching (pages show
// codes and amounts), a CSP allowing no script at all, no framing.
func SetHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// Money formats minor units of an ISO 4217 currency for people: "$1.50"
// for USD, "1.50 EUR" otherwise (two decimals; the protocol's currencies).
func Money(minor int64, currency string) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	n := fmt.Sprintf("%d.%02d", minor/100, minor%100)
	if strings.EqualFold(currency, "USD") {
		return sign + "$" + n
	}
	return sign + n + " " + strings.ToUpper(currency)
}

// Style is the stylesheet the pages inline (the CSP forbids fetching one).
const Style = `body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d2330;line-height:1.45}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}.card{border:1px solid #d5d9e0;border-radius:8px;padding:1rem 1.2rem;margin:1rem 0;background:#fafbfc}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0}dt{color:#5a6270}dd{margin:0}
table{border-collapse:collapse;width:100%;font-size:.93rem}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e6ea}th{color:#5a6270;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
button{font:inherit;white-space:nowrap;padding:.45rem 1rem;border-radius:6px;border:1px solid #9aa3b0;background:#fff;cursor:pointer}button.primary{background:#1f6feb;border-color:#1f6feb;color:#fff}button.danger{color:#b42318}
input{font:inherit;padding:.35rem .5rem;border:1px solid #9aa3b0;border-radius:6px}.msg{padding:.6rem .9rem;border-radius:6px;background:#eef4ff}.err{background:#fdecea}
td form{display:flex;gap:.3rem;margin:.2rem 0}td form input{width:5.5rem}
code{background:#eef0f3;padding:.05rem .3rem;border-radius:4px}small{color:#5a6270}.receipt{font-family:monospace;font-size:.72rem;word-break:break-all;color:#5a6270}`

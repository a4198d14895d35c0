package demo

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/webform"
)

// Paths of the provider's human pages.
const (
	// DevicePath is the RFC 8628 verification page (provision.DevicePage).
	DevicePath = "/device"
	// DemoSignInPath is the demo-only sign-in page.
	DemoSignInPath = "/login"
)

const demoSessionCookie = "demo_provider_session"

// demoSessions is the demo provider's stand-in for a real login: a
// session cookie holding an email and its HMAC. It authenticates nobody
// (the sign-in page asks only for an email) and exists so the examples can
// run the device flow across processes.
type demoSessions struct{ key []byte }

func newDemoSessions() *demoSessions {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return &demoSessions{key: k}
}

func (s *demoSessions) mac(email string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(email))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *demoSessions) email(r *http.Request) (string, bool) {
	c, err := r.Cookie(demoSessionCookie)
	if err != nil {
		return "", false
	}
	raw, mac, ok := strings.Cut(c.Value, ".")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || !hmac.Equal([]byte(mac), []byte(s.mac(string(b)))) {
		return "", false
	}
	return string(b), true
}

// SignedIn is the demo's provision.SignedInFunc: the account whose email the
// demo session cookie names.
func (p *Provider) SignedIn(r *http.Request) (provision.SignedInUser, bool) {
	email, ok := p.sessions.email(r)
	if !ok {
		return provision.SignedInUser{}, false
	}
	acct, err := p.accounts.FindByEmail(r.Context(), email)
	if err != nil {
		return provision.SignedInUser{}, false
	}
	return provision.SignedInUser{AccountID: acct.ID, Display: email}, true
}

var signInTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Provider}}: sign in</title><style>{{.Style}}</style></head><body>
<h1>{{.Provider}}: sign in (demo)</h1>
{{if .Message}}<p class="msg err">{{.Message}}</p>{{end}}
<form method="post" class="card"><input type="hidden" name="csrf_token" value="{{.CSRF}}"><input type="hidden" name="next" value="{{.Next}}">
<p><label>Your account's email <input id="email" name="email" autocomplete="email"></label> <button class="primary" id="sign-in">Sign in</button></p></form>
<p><small>Demo only: this page signs in whoever types an account's email. A real provider uses its own login here.</small></p>
</body></html>`))

// DemoSignInHandler serves DemoSignInPath: a sign-in whose only check is
// that an account with the typed email exists. It lets the examples run the
// device flow and must never be exposed on a real provider.
func (p *Provider) DemoSignInHandler() http.Handler {
	csrf := webform.NewCSRF("demo_login_csrf", nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		webform.SetHeaders(w)
		data := struct {
			Provider, Next, Message, CSRF string
			Style                         template.CSS
		}{Provider: p.profile.Name, Next: r.URL.Query().Get("next"), Style: template.CSS(webform.Style)}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
			if err := r.ParseForm(); err != nil || csrf.Check(r) != nil {
				w.WriteHeader(http.StatusForbidden)
				data.Message = "Reload the page and try again."
			} else if email := strings.TrimSpace(r.PostForm.Get("email")); email == "" {
				data.Message = "Type your account's email."
			} else if _, err := p.accounts.FindByEmail(r.Context(), email); err != nil {
				data.Message = "No account with that email."
			} else {
				http.SetCookie(w, &http.Cookie{Name: demoSessionCookie, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
					SameSite: http.SameSiteLaxMode, Value: base64.RawURLEncoding.EncodeToString([]byte(email)) + "." + p.sessions.mac(email)})
				next := r.PostForm.Get("next")
				// Only local paths: no open redirect.
				if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
					next = DevicePath
				}
				http.Redirect(w, r, next, http.StatusSeeOther)
				return
			}
			data.Next = r.PostForm.Get("next")
		}
		data.CSRF = csrf.Token(w, r)
		_ = signInTemplate.Execute(w, data)
	})
}

// serviceForPage describes a service of the catalog for the device page.
func (p *Provider) serviceForPage(ref string) (provision.DeviceService, bool) {
	id, ok := strings.CutPrefix(ref, p.profile.ID+"/")
	if !ok {
		return provision.DeviceService{}, false
	}
	s := p.profile.Service(id)
	if s == nil {
		return provision.DeviceService{}, false
	}
	out := provision.DeviceService{Title: s.ServiceID, Description: s.Description}
	if amount, currency := upfront(s); amount > 0 {
		out.Price = webform.Money(amount, currency)
	} else if price, ok := metered(s); ok {
		out.Price = webform.Money(price.Amount, price.Currency) + " per call"
	}
	return out, true
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// ApproveByForm does what the person does in a browser, over plain HTTP:
// sign in at the demo provider at base as email, open the device page for
// userCode and press Approve. Tests and scripts use it; it fails unless the
// page reports the approval.
func ApproveByForm(ctx context.Context, base, userCode, email string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	post := func(path string, form url.Values) (string, error) {
		// Each form needs the token of the page that shows it.
		page, err := get(ctx, c, base+path)
		if err != nil {
			return "", err
		}
		m := csrfField.FindStringSubmatch(page)
		if m == nil {
			return "", fmt.Errorf("demo: %s: no form", path)
		}
		form.Set("csrf_token", html.UnescapeString(m[1]))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+strings.SplitN(path, "?", 2)[0], strings.NewReader(form.Encode()))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("demo: %s: HTTP %d", path, resp.StatusCode)
		}
		return string(b), nil
	}
	if _, err := post(DemoSignInPath, url.Values{"email": {email}, "next": {DevicePath}}); err != nil {
		return err
	}
	out, err := post(DevicePath+"?user_code="+url.QueryEscape(userCode), url.Values{"user_code": {userCode}, "action": {"approve"}})
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Approved.") {
		return errors.New("demo: the device page did not approve")
	}
	return nil
}

func get(ctx context.Context, c *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return string(b), err
}

package provision_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/authztesting"
	"github.com/agentprov/agentprov/internal/clock"
)

func TestNewProvisionerValidates(t *testing.T) {
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	v, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: authztesting.OrchestratorIssuer, Keys: o.Attester.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, tk := provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore()
	good := provision.ProvisionerOptions{Issuer: "https://acme.example", TermsVersion: "1"}
	cases := map[string]func() (*provision.Provisioner, error){
		"nil verifier": func() (*provision.Provisioner, error) { return provision.NewProvisioner(nil, a, tk, &good) },
		"nil accounts": func() (*provision.Provisioner, error) { return provision.NewProvisioner(v, nil, tk, &good) },
		"nil tokens":   func() (*provision.Provisioner, error) { return provision.NewProvisioner(v, a, nil, &good) },
		"nil options":  func() (*provision.Provisioner, error) { return provision.NewProvisioner(v, a, tk, nil) },
		"http issuer": func() (*provision.Provisioner, error) {
			o := good
			o.Issuer = "http://acme.example"
			return provision.NewProvisioner(v, a, tk, &o)
		},
		"pattern in issuer path": func() (*provision.Provisioner, error) {
			o := good
			o.Issuer = "https://acme.example/{x}"
			return provision.NewProvisioner(v, a, tk, &o)
		},
		"no terms": func() (*provision.Provisioner, error) {
			o := good
			o.TermsVersion = ""
			return provision.NewProvisioner(v, a, tk, &o)
		},
		"bad scope": func() (*provision.Provisioner, error) {
			o := good
			o.DefaultScopes = []string{"two words"}
			return provision.NewProvisioner(v, a, tk, &o)
		},
		"insecure redirect": func() (*provision.Provisioner, error) {
			o := good
			o.RedirectURIs = map[string][]string{authztesting.OrchestratorIssuer: {"http://evil.example/cb"}}
			return provision.NewProvisioner(v, a, tk, &o)
		},
	}
	for name, mk := range cases {
		if p, err := mk(); err == nil || p != nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := provision.NewProvisioner(v, a, tk, &good); err != nil {
		t.Fatalf("good options: %v", err)
	}
}

func TestTokenEndpointRequestErrors(t *testing.T) {
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer}})
	c := p.Server.Client()
	do := func(method, ctype, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, p.Server.URL+provision.PathToken, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q", cc)
		}
		var b struct{ Error string }
		_ = jsonDecode(resp.Body, &b)
		return resp.StatusCode, b.Error
	}
	form := "application/x-www-form-urlencoded"
	u := authztesting.User{Sub: "s", Email: "s@example.com", Verified: true}
	cases := []struct {
		name, method, ctype, body string
		status                    int
		code                      string
	}{
		{"GET", http.MethodGet, "", "", 405, "invalid_request"},
		{"json body", http.MethodPost, "application/json", `{"grant_type":"x"}`, 400, "invalid_request"},
		{"repeated param", http.MethodPost, form, "grant_type=a&grant_type=b", 400, "invalid_request"},
		{"no grant", http.MethodPost, form, "assertion=x", 400, "invalid_request"},
		{"unknown grant", http.MethodPost, form, "grant_type=password&username=a", 400, "unsupported_grant_type"},
		{"code grant disabled", http.MethodPost, form, "grant_type=authorization_code&code=x", 400, "unsupported_grant_type"},
		{"no assertion", http.MethodPost, form, "grant_type=" + url.QueryEscape(authz.GrantTypeJWTBearer), 400, "invalid_request"},
		{"too large", http.MethodPost, form, "grant_type=x&pad=" + strings.Repeat("a", 40<<10), 400, "invalid_request"},
		{"bad scope", http.MethodPost, form, authztesting.JWTBearer(o.Attest(t, "acme", u, false)).Encode() + "&scope=admin", 400, "invalid_scope"},
	}
	for _, tc := range cases {
		status, code := do(tc.method, tc.ctype, tc.body)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, code, tc.status, tc.code)
		}
	}
	// A narrower scope request is honoured.
	_, body := authztesting.PostToken(t, p, url.Values{"grant_type": {authz.GrantTypeJWTBearer}, "assertion": {o.Attest(t, "acme", u, false)}, "scope": {"zones:read"}})
	if body["scope"] != "zones:read" {
		t.Fatalf("narrowed scope = %v", body["scope"])
	}
}

func TestDevicePolling(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Now())
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer}, Clock: fake})
	if err := p.Accounts.Seed(context.Background(), provision.Account{ID: "acct_dev", Email: "dev@example.com"}); err != nil {
		t.Fatal(err)
	}
	u := authztesting.User{Sub: "dev", Email: "dev@example.com", Verified: true}
	start := func() *authz.DeviceAuthorizationResponse {
		t.Helper()
		da, err := p.Provisioner.StartDevice(ctx, url.Values{"client_id": {authztesting.OrchestratorIssuer}, "assertion": {o.Attest(t, "acme", u, true)}})
		if err != nil {
			t.Fatal(err)
		}
		return da
	}
	poll := func(da *authz.DeviceAuthorizationResponse) error {
		_, err := p.Provisioner.Exchange(ctx, url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "client_id": {authztesting.OrchestratorIssuer}, "device_code": {da.DeviceCode}})
		return err
	}
	if _, err := p.Provisioner.StartDevice(ctx, url.Values{"client_id": {"https://someone-else.example"}, "assertion": {o.Attest(t, "acme", u, true)}}); !errors.Is(err, authz.ErrInvalidClient) {
		t.Fatalf("client_id not the issuer: %v", err)
	}

	da := start()
	if err := poll(da); !errors.Is(err, authz.ErrAuthorizationPending) {
		t.Fatalf("first poll: %v", err)
	}
	if err := poll(da); !errors.Is(err, authz.ErrSlowDown) {
		t.Fatalf("immediate second poll: %v", err)
	}
	fake.Advance(2 * time.Second) // less than the raised interval (6s)
	if err := poll(da); !errors.Is(err, authz.ErrSlowDown) {
		t.Fatalf("poll inside raised interval: %v", err)
	}
	fake.Advance(12 * time.Second)
	if err := p.Provisioner.DenyDevice(ctx, da.UserCode); err != nil {
		t.Fatal(err)
	}
	if err := poll(da); !errors.Is(err, authz.ErrAccessDenied) {
		t.Fatalf("after denial: %v", err)
	}
	if err := p.Provisioner.ApproveDevice(ctx, da.UserCode, "acct_dev"); !errors.Is(err, provision.ErrUnknownUserCode) {
		t.Fatalf("approve after denial: %v", err)
	}

	da = start()
	fake.Advance(11 * time.Minute)
	if err := p.Provisioner.ApproveDevice(ctx, da.UserCode, "acct_dev"); !errors.Is(err, provision.ErrUnknownUserCode) {
		t.Fatalf("approve expired: %v", err)
	}
	if err := poll(da); !errors.Is(err, authz.ErrDeviceCodeExpired) {
		t.Fatalf("expired: %v", err)
	}

	// Approval for an account already linked to another identity's
	// account fails cleanly: the identity stays where it is.
	da = start()
	if err := p.Provisioner.ApproveDevice(ctx, da.UserCode, "acct_missing"); err != nil {
		t.Fatal(err)
	}
	fake.Advance(5 * time.Second)
	if err := poll(da); !errors.Is(err, authz.ErrInvalidGrant) || !errors.Is(err, provision.ErrAccountNotFound) {
		t.Fatalf("approval naming an unknown account: %v", err)
	}
}

func TestEmailLinkPolicy(t *testing.T) {
	ctx := context.Background()
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	var asked int
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{
		Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer},
		Policy: func(_ context.Context, att *authz.Attestation, existing *provision.Account) bool {
			asked++
			return att.Issuer == authztesting.OrchestratorIssuer && existing.ID == "acct_trusted"
		},
	})
	if err := p.Accounts.Seed(context.Background(), provision.Account{ID: "acct_trusted", Email: "t@example.com"}); err != nil {
		t.Fatal(err)
	}
	tr, err := p.Provisioner.Exchange(ctx, authztesting.JWTBearer(o.Attest(t, "acme", authztesting.User{Sub: "t", Email: "t@example.com", Verified: true}, true)))
	if err != nil || tr.LinkAction != authz.LinkExisting || tr.AccountID != "acct_trusted" || asked != 1 {
		t.Fatalf("policy link = %v, %v (asked %d)", tr, err, asked)
	}
	if strings.Contains(tr.String(), tr.AccessToken) || strings.Contains(strings.Join([]string{tr.String()}, ""), "apt_") {
		t.Fatalf("TokenResponse.String leaks the token: %s", tr)
	}
}

func TestRFC7009Revoke(t *testing.T) {
	ctx := context.Background()
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer}})
	tr, err := p.Provisioner.Exchange(ctx, authztesting.JWTBearer(o.Attest(t, "acme", authztesting.User{Sub: "r", Email: "r@example.com", Verified: true}, false)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{tr.AccessToken, "unknown-token"} {
		resp, err := p.Server.Client().PostForm(p.Server.URL+provision.PathRevoke, url.Values{"token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke %d", resp.StatusCode)
		}
	}
	rec, err := p.Tokens.Lookup(ctx, authz.HashToken(tr.AccessToken))
	if err != nil || !rec.Revoked() {
		t.Fatalf("token not revoked: %+v %v", rec, err)
	}
}

func TestRevocationEventValidation(t *testing.T) {
	ctx := context.Background()
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer}})
	tr, err := p.Provisioner.Exchange(ctx, authztesting.JWTBearer(o.Attest(t, "acme", authztesting.User{Sub: "ev", Email: "ev@example.com", Verified: true}, false)))
	if err != nil {
		t.Fatal(err)
	}
	sign := func(ev authz.RevocationEvent) string {
		s, err := o.Attester.Sign(ctx, authz.TypeRevocation, ev)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	post := func(ctype, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, p.Server.URL+provision.PathRevocationEvent, strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		resp, err := p.Server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b struct {
			Code    string
			Revoked int
		}
		_ = jsonDecode(resp.Body, &b)
		return resp.StatusCode, b.Code
	}
	hash := authz.HashToken(tr.AccessToken).String()
	if s, c := post("application/jwt", sign(authz.RevocationEvent{Audience: "acme"})); s != 400 || c != "invalid_revocation" {
		t.Errorf("no account_id: %d %s", s, c)
	}
	if s, c := post("application/jwt", sign(authz.RevocationEvent{Audience: "acme", AccountID: tr.AccountID, TokenHashes: []string{"zz"}})); s != 400 || c != "invalid_revocation" {
		t.Errorf("bad hash: %d %s", s, c)
	}
	if s, c := post("application/jwt", sign(authz.RevocationEvent{Audience: "acme", AccountID: tr.AccountID, Subject: "someone-else", TokenHashes: []string{hash}})); s != 400 || c != "invalid_revocation" {
		t.Errorf("subject mismatch: %d %s", s, c)
	}
	if s, _ := post("application/json", sign(authz.RevocationEvent{Audience: "acme", AccountID: tr.AccountID})); s != 415 {
		t.Errorf("wrong content type: %d", s)
	}
	if rec, _ := p.Tokens.Lookup(ctx, authz.HashToken(tr.AccessToken)); rec.Revoked() {
		t.Fatal("a rejected event revoked the token")
	}
	ev := sign(authz.RevocationEvent{Audience: "acme", AccountID: tr.AccountID, Subject: "ev", TokenHashes: []string{hash}})
	if s, _ := post("application/jwt", ev); s != 200 {
		t.Fatalf("valid event: %d", s)
	}
	if s, c := post("application/jwt", ev); s != 401 || c != "token_replayed" {
		t.Errorf("replayed event: %d %s", s, c)
	}
	// Idempotent: a fresh event for the same token revokes nothing more.
	n, err := p.Provisioner.HandleRevocation(ctx, sign(authz.RevocationEvent{Audience: "acme", AccountID: tr.AccountID}))
	if err != nil || n != 0 {
		t.Fatalf("repeat revocation = %d, %v", n, err)
	}
}

func FuzzParseTokenForm(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=eyJ.x.y")
	f.Add("application/x-www-form-urlencoded; charset=UTF-8", "a=1&b=2")
	f.Add("application/x-www-form-urlencoded", "a=1&a=2")
	f.Add("text/plain", "a=1")
	f.Add("application/x-www-form-urlencoded", "%zz=1")
	f.Add("application/x-www-form-urlencoded", "a=%00")
	f.Fuzz(func(t *testing.T, ctype, body string) {
		form, err := provision.ParseTokenForm(ctype, []byte(body))
		if err != nil {
			if !errors.Is(err, authz.ErrInvalidRequest) {
				t.Fatalf("error %v is not invalid_request", err)
			}
			return
		}
		for k, v := range form {
			if len(v) != 1 {
				t.Fatalf("parameter %q has %d values", k, len(v))
			}
			if strings.ContainsRune(k, 0) || strings.ContainsRune(v[0], 0) {
				t.Fatalf("NUL accepted in %q", k)
			}
		}
		// Accepted forms survive a round trip through encoding.
		enc := form.Encode()
		if len(enc) > 32<<10 {
			return
		}
		again, err := provision.ParseTokenForm("application/x-www-form-urlencoded", []byte(enc))
		if err != nil || len(again) != len(form) {
			t.Fatalf("re-encoded form rejected: %v", err)
		}
	})
}

func jsonDecode(r io.Reader, v any) error {
	return json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(v)
}

func TestPendingGrantsBounded(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Now())
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	v, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: authztesting.OrchestratorIssuer, Keys: o.Attester.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := provision.NewProvisioner(v, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(), &provision.ProvisionerOptions{
		Issuer: "https://acme.example", TermsVersion: "1", MaxPendingGrants: 2, Clock: fake.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	start := func() error {
		_, err := p.StartDevice(ctx, url.Values{"client_id": {authztesting.OrchestratorIssuer}, "assertion": {o.Attest(t, "acme", authztesting.User{Sub: "b", Email: "b@example.com", Verified: true}, true)}})
		return err
	}
	for i := range 2 {
		if err := start(); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
	}
	if err := start(); !errors.Is(err, authz.ErrTemporarilyUnavailable) {
		t.Fatalf("third pending grant: %v, want temporarily_unavailable", err)
	}
	fake.Advance(11 * time.Minute) // the first two expire and are evicted
	if err := start(); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestTokenResponseRedacts(t *testing.T) {
	tr := authz.TokenResponse{AccessToken: "apt_SECRETSECRET", TokenType: "Bearer", AccountID: "acct_1", LinkAction: authz.LinkCreated}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("issued", "resp", tr)
	for _, s := range []string{fmt.Sprint(tr), fmt.Sprintf("%+v", tr), fmt.Sprintf("%#v", tr), fmt.Sprintf("%v", &tr), logged.String()} {
		if strings.Contains(s, "SECRET") {
			t.Errorf("token leaked: %s", s)
		}
	}
	b, _ := json.Marshal(tr)
	if !strings.Contains(string(b), "apt_SECRETSECRET") {
		t.Error("the wire form must carry the token")
	}
}

func TestProvisionerRefusesUnsupportedVersion(t *testing.T) {
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	v, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: authztesting.OrchestratorIssuer, Keys: o.Attester.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := provision.NewProvisioner(v, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(),
		&provision.ProvisionerOptions{Issuer: "https://acme.example", TermsVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	h := p.Handler()
	for _, tc := range []struct {
		version string
		want    int
	}{{"1.0", http.StatusBadRequest}, {"garbage", http.StatusBadRequest}, {"0.1", http.StatusOK}, {"", http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, p.ResourceMetadataURL(), nil)
		if tc.version != "" {
			req.Header.Set(provision.VersionHeader, tc.version)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("version %q: status %d, want %d (%s)", tc.version, rec.Code, tc.want, rec.Body)
		}
		if tc.want == http.StatusBadRequest && !strings.Contains(rec.Body.String(), `"code":"unsupported_version"`) {
			t.Errorf("version %q: body %s lacks unsupported_version", tc.version, rec.Body)
		}
	}
}

// TestSlowDownIntervalOnWire: every slow_down body names the grown interval
// the server now enforces (RFC 8628 §3.5: base + 5 s per slow_down), and its
// description names the same number.
func TestSlowDownIntervalOnWire(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Now())
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer}, Clock: fake})
	u := authztesting.User{Sub: "dev", Email: "dev@example.com", Verified: true}
	da, err := p.Provisioner.StartDevice(ctx, url.Values{"client_id": {authztesting.OrchestratorIssuer}, "assertion": {o.Attest(t, "acme", u, true)}})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "client_id": {authztesting.OrchestratorIssuer}, "device_code": {da.DeviceCode}}
	if _, body := authztesting.PostToken(t, p, form); body["error"] != "authorization_pending" {
		t.Fatalf("first poll: %v", body)
	}
	base := da.Interval
	for i := int64(1); i <= 3; i++ {
		resp, body := authztesting.PostToken(t, p, form)
		want := base + 5*i
		if resp.StatusCode != http.StatusBadRequest || body["error"] != "slow_down" {
			t.Fatalf("poll %d: %d %v", i, resp.StatusCode, body)
		}
		if got, _ := body["interval"].(float64); int64(got) != want {
			t.Errorf("slow_down %d: interval %v, want %d (base %d + 5×%d)", i, body["interval"], want, base, i)
		}
		if desc, _ := body["error_description"].(string); !strings.Contains(desc, fmt.Sprintf("wait %d seconds", want)) {
			t.Errorf("slow_down %d: description %q does not name %d seconds", i, desc, want)
		}
	}
	// Polling at the advertised interval is accepted again.
	fake.Advance(time.Duration(base+15) * time.Second)
	if _, body := authztesting.PostToken(t, p, form); body["error"] != "authorization_pending" {
		t.Fatalf("poll at the advertised interval: %v", body)
	}
}

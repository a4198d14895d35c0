package authz_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/authztesting"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// goldenProvisioner is a provisioner at a fixed issuer so that its wire
// documents are stable.
func goldenProvisioner(t *testing.T) (*provision.Provisioner, *orchestrator, *provision.MemoryAccountStore) {
	t.Helper()
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	v, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: authztesting.OrchestratorIssuer, Keys: o.Attester.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	accounts := provision.NewMemoryAccountStore()
	p, err := provision.NewProvisioner(v, accounts, provision.NewMemoryTokenStore(), &provision.ProvisionerOptions{
		Issuer:        "https://acme.example",
		ResourceName:  "Acme API",
		TermsVersion:  "2026-04",
		TermsURL:      "https://acme.example/terms",
		ServiceScopes: map[string][]string{"acme/dns": {"dns:write", "zones:read"}},
		DefaultScopes: []string{"zones:read"},
		Authorizer: provision.AuthorizerFunc(func(http.ResponseWriter, *http.Request, *provision.AuthorizationRequest) (string, error) {
			return "", authz.ErrAccessDenied
		}),
		RedirectURIs: map[string][]string{authztesting.OrchestratorIssuer: {authztesting.CallbackURL}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, o, accounts
}

// checkWireGolden compares got (raw JSON) with testdata/provisioning/name,
// as JSON values, and that the file decodes into typ and re-encodes to the
// same value. go test -update rewrites the files.
func checkWireGolden(t *testing.T, name string, got []byte, typ any) {
	t.Helper()
	path := filepath.Join("testdata", "provisioning", name)
	if *updateGolden {
		var v any
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatal(err)
		}
		out, _ := json.MarshalIndent(v, "", "  ")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create)", err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(w, g); d != "" {
		t.Errorf("%s mismatch (-golden +got):\n%s", name, d)
	}
	if typ != nil {
		if err := json.Unmarshal(want, typ); err != nil {
			t.Fatalf("%s does not decode into %T: %v", name, typ, err)
		}
		again, _ := json.Marshal(typ)
		var a any
		_ = json.Unmarshal(again, &a)
		if d := cmp.Diff(w, a); d != "" {
			t.Errorf("%s does not round-trip through %T (-golden +re-encoded):\n%s", name, typ, d)
		}
	}
}

func serve(h http.Handler, method, target, ctype, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestGoldenProvisioningDocuments(t *testing.T) {
	p, o, accounts := goldenProvisioner(t)
	h := p.Handler()

	rec := serve(h, http.MethodGet, "https://acme.example"+authz.PathResourceMetadata, "", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("resource metadata: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	checkWireGolden(t, "resource_metadata.json", rec.Body.Bytes(), &authz.ProtectedResourceMetadata{})

	rec = serve(h, http.MethodGet, "https://acme.example"+authz.PathServerMetadata, "", "")
	checkWireGolden(t, "server_metadata.json", rec.Body.Bytes(), &authz.AuthorizationServerMetadata{})

	// consent_required: an account holds the attested email.
	if err := accounts.Seed(context.Background(), provision.Account{ID: "acct_1", Email: "old@example.com"}); err != nil {
		t.Fatal(err)
	}
	form := authztesting.JWTBearer(o.Attest(t, "acme", authztesting.User{Sub: "u1", Email: "old@example.com", Verified: true}, false)).Encode()
	rec = serve(h, http.MethodPost, "https://acme.example"+provision.PathToken, "application/x-www-form-urlencoded", form)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("consent_required status %d", rec.Code)
	}
	wantChallenge := `Bearer error="consent_required", resource_metadata="https://acme.example/.well-known/oauth-protected-resource"`
	if got := rec.Header().Get("WWW-Authenticate"); got != wantChallenge {
		t.Errorf("WWW-Authenticate = %q, want %q", got, wantChallenge)
	}
	checkWireGolden(t, "error_consent_required.json", rec.Body.Bytes(), nil)

	// The success body, with the random parts fixed.
	tr := authz.TokenResponse{
		AccessToken: "apt_3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", TokenType: "Bearer", ExpiresIn: 2592000,
		Scope: "dns:write zones:read", AccountID: "acct_bq2xk5m3yv7l4c2jz6w4q3r5ta", LinkAction: authz.LinkCreated,
	}
	b, _ := json.Marshal(tr)
	checkWireGolden(t, "token_response.json", b, &authz.TokenResponse{})

	da := authz.DeviceAuthorizationResponse{
		DeviceCode: "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS", UserCode: "WDJB-MJHT",
		VerificationURI: "https://acme.example/device", VerificationURIComplete: "https://acme.example/device?user_code=WDJB-MJHT",
		ExpiresIn: 600, Interval: 5,
	}
	b, _ = json.Marshal(da)
	checkWireGolden(t, "device_authorization_response.json", b, &authz.DeviceAuthorizationResponse{})

	ev := authz.RevocationEvent{
		Issuer: authztesting.OrchestratorIssuer, Audience: "acme", ID: "Jx3kQ1tq5mAbCdEfGhIjKl", IssuedAt: 1777636800, Expiry: 1777637100,
		Subject: "u1", AccountID: "acct_bq2xk5m3yv7l4c2jz6w4q3r5ta", Project: "proj_1", Service: "acme/dns",
		TokenHashes: []string{authz.HashToken("apt_example").String()},
	}
	b, _ = json.Marshal(ev)
	checkWireGolden(t, "revocation_event_claims.json", b, &authz.RevocationEvent{})

	b, _ = json.Marshal(authz.RevocationAck{ProtocolVersion: "0.1", Revoked: 1})
	checkWireGolden(t, "revocation_ack.json", b, &authz.RevocationAck{})
}

func TestFetchServerMetadataChecks(t *testing.T) {
	var doc map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	defer srv.Close()
	ctx := context.Background()
	base := func() map[string]any {
		return map[string]any{
			"issuer": srv.URL, "token_endpoint": srv.URL + "/token", "authorization_endpoint": srv.URL + "/authorize",
			"code_challenge_methods_supported": []string{"S256"}, "grant_types_supported": []string{}, "response_types_supported": []string{"code"},
			"token_endpoint_auth_methods_supported": []string{"none"},
		}
	}
	doc = base()
	if _, err := authz.FetchServerMetadata(ctx, srv.Client(), srv.URL); err != nil {
		t.Fatalf("good metadata: %v", err)
	}
	for name, mutate := range map[string]func(m map[string]any){
		"issuer mismatch":   func(m map[string]any) { m["issuer"] = "https://evil.example" },
		"insecure endpoint": func(m map[string]any) { m["token_endpoint"] = "http://evil.example/token" },
		"plain PKCE only":   func(m map[string]any) { m["code_challenge_methods_supported"] = []string{"plain"} },
		"no token endpoint": func(m map[string]any) { delete(m, "token_endpoint") },
	} {
		doc = base()
		mutate(doc)
		if _, err := authz.FetchServerMetadata(ctx, srv.Client(), srv.URL); !errors.Is(err, authz.ErrInvalidMetadata) {
			t.Errorf("%s: err = %v, want ErrInvalidMetadata", name, err)
		}
	}
	if _, err := authz.FetchResourceMetadata(ctx, nil, "http://evil.example/prm", ""); !errors.Is(err, authz.ErrInvalidMetadata) {
		t.Errorf("insecure resource metadata URL: %v", err)
	}
	doc = map[string]any{"resource": "https://other.example"}
	if _, err := authz.FetchResourceMetadata(ctx, srv.Client(), srv.URL+"/prm", "https://acme.example"); !errors.Is(err, authz.ErrInvalidMetadata) {
		t.Errorf("resource mismatch: %v", err)
	}
}

func TestFetchRefusesInsecureRedirect(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://evil.example/prm", http.StatusFound)
	}))
	defer srv.Close()
	client := srv.Client()
	before := client.CheckRedirect
	_, err := authz.FetchResourceMetadata(context.Background(), client, srv.URL+"/prm", "")
	if !errors.Is(err, authz.ErrInvalidMetadata) || !strings.Contains(err.Error(), "evil.example") {
		t.Fatalf("err = %v, want a refused redirect", err)
	}
	if client.CheckRedirect == nil && before != nil || client.CheckRedirect != nil && before == nil {
		t.Fatal("the caller's client was modified")
	}
}

// An issuer with a path gets RFC 8414 §3.1 / RFC 9728 §3.1 path insertion.
func TestIssuerWithPath(t *testing.T) {
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	v, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: authztesting.OrchestratorIssuer, Keys: o.Attester.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := provision.NewProvisioner(v, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(),
		&provision.ProvisionerOptions{Issuer: "https://acme.example/auth", TermsVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.ResourceMetadataURL(); got != "https://acme.example/.well-known/oauth-protected-resource/auth" {
		t.Fatalf("resource metadata URL = %s", got)
	}
	h := p.Handler()
	rec := serve(h, http.MethodGet, "https://acme.example/.well-known/oauth-authorization-server/auth", "", "")
	var m authz.AuthorizationServerMetadata
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m.Issuer != "https://acme.example/auth" || m.TokenEndpoint != "https://acme.example/auth/oauth/token" {
		t.Fatalf("metadata = %d %+v %v", rec.Code, m, err)
	}
	rec = serve(h, http.MethodPost, "https://acme.example/auth/oauth/token", "application/x-www-form-urlencoded", "grant_type=x")
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "unsupported_grant_type") {
		t.Fatalf("token endpoint under issuer path: %d %s", rec.Code, rec.Body.String())
	}
}

// The metadata handlers are exported and may be mounted without a method
// pattern: they answer GET and HEAD only, with a problem+json 405 else.
func TestMetadataHandlersRefuseOtherMethods(t *testing.T) {
	p, _, _ := goldenProvisioner(t)
	for name, h := range map[string]http.Handler{"resource": p.ResourceMetadataHandler(), "server": p.ServerMetadataHandler()} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			rec := serve(h, m, "https://acme.example/", "application/json", "{}")
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" ||
				!strings.Contains(rec.Body.String(), `"code":"method_not_allowed"`) {
				t.Errorf("%s %s: %d %q %s", name, m, rec.Code, rec.Header().Get("Allow"), rec.Body)
			}
		}
		if rec := serve(h, http.MethodHead, "https://acme.example/", "", ""); rec.Code != http.StatusOK {
			t.Errorf("%s HEAD: %d", name, rec.Code)
		}
	}
}

// A KeySet follows redirects only to HTTPS or loopback URLs, and leaves the
// caller's client as it was.
func TestKeySetRefusesInsecureRedirect(t *testing.T) {
	var evilFetched bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"keys":[]}`))
			return
		}
		http.Redirect(w, r, "http://evil.example/jwks.json", http.StatusFound)
	}))
	defer srv.Close()
	client := srv.Client()
	client.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host == "evil.example" {
			evilFetched = true
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	ks, err := authz.NewKeySet(srv.URL+"/jwks.json", &authz.KeySetOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Refresh(context.Background()); !errors.Is(err, safehttp.ErrInsecureURL) {
		t.Fatalf("err = %v, want a refused redirect", err)
	}
	if evilFetched {
		t.Fatal("the insecure redirect target was fetched")
	}
	if client.CheckRedirect != nil {
		t.Fatal("the caller's client was modified")
	}
	// A redirect to the same loopback server is followed.
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/moved", http.StatusFound)
	}))
	defer srv2.Close()
	ks2, err := authz.NewKeySet(srv2.URL+"/jwks.json", &authz.KeySetOptions{HTTPClient: srv2.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ks2.Refresh(context.Background()); err != nil {
		t.Fatalf("loopback redirect: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

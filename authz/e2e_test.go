package authz_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/sqlstore"
	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/sqltest"
)

const (
	orchIssuer   = "https://orchestrator.example"
	termsVersion = "2026-04"
	termsURL     = "https://provider.example/terms"
	callbackURL  = "http://127.0.0.1/callback"
)

// orchestrator is the orchestrator side of the tests: an attester and a vault.
type orchestrator struct {
	att *authz.Attester
	vlt *vault.Vault
}

func newOrchestrator(t testing.TB, issuer string) *orchestrator {
	t.Helper()
	key, err := authz.GenerateSigningKey("k1", jose.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	att, err := authz.NewAttester(issuer, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	vlt, err := vault.NewVault(vault.NewMemoryVaultStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &orchestrator{att: att, vlt: vlt}
}

type user struct {
	sub, email string
	verified   bool
}

// attest signs an attestation for u at provider aud, with a human consent
// receipt for the current terms unless noConsent.
func (o *orchestrator) attest(t testing.TB, aud string, u user, noConsent bool) string {
	t.Helper()
	ctx := context.Background()
	req := authz.AttestRequest{
		Audience: aud, Subject: u.sub, Email: u.email, EmailVerified: u.verified, Name: "Test " + u.sub,
		Actor: &authz.Actor{Sub: "agent-7"}, Project: "proj_1", Service: aud + "/dns",
	}
	if !noConsent {
		c, err := o.att.SignConsent(ctx, authz.ConsentReceipt{
			Subject: u.sub, Email: u.email, Provider: aud, TermsURL: termsURL, TermsVersion: termsVersion,
			AcceptedAt: time.Now().Add(-time.Minute), Agent: "agent-7", Human: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		req.Consent = c
	}
	tok, err := o.att.Attest(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// provider is one provider: its stores, provisioner and httptest server.
type provider struct {
	id       string
	srv      *httptest.Server
	prov     *provision.Provisioner
	accounts *provision.MemoryAccountStore
	tokens   *provision.MemoryTokenStore
	// revocationFailures makes the next N revocation events answer 503.
	revocationFailures atomic.Int32
	revocationCalls    atomic.Int32
}

type providerConfig struct {
	trust     []*orchestrator
	issuers   []string
	authorize provision.AuthorizerFunc
	clock     *clock.Fake
	policy    provision.EmailLinkPolicy
}

func newProvider(t testing.TB, id string, cfg providerConfig) *provider {
	t.Helper()
	p := &provider{id: id, accounts: provision.NewMemoryAccountStore(), tokens: provision.NewMemoryTokenStore()}
	var handler http.Handler
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(p.srv.Close)
	var trust []authz.TrustedIssuer
	for i, o := range cfg.trust {
		trust = append(trust, authz.TrustedIssuer{Issuer: cfg.issuers[i], Keys: o.att.JWKS()})
	}
	v, err := authz.NewVerifier(id, trust, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := &provision.ProvisionerOptions{
		Issuer:        p.srv.URL,
		ResourceName:  id + " API",
		TermsVersion:  termsVersion,
		TermsURL:      termsURL,
		ServiceScopes: map[string][]string{id + "/dns": {"dns:write", "zones:read"}},
		DefaultScopes: []string{"zones:read"},
		RedirectURIs:  map[string][]string{orchIssuer: {callbackURL}},
		Logger:        slog.New(slog.DiscardHandler),
		// The oauth2 client waits one interval before its first poll.
		DeviceInterval: time.Second,
	}
	if cfg.authorize != nil {
		opts.Authorizer = cfg.authorize
	}
	if cfg.clock != nil {
		opts.Clock = cfg.clock.Now
	}
	opts.EmailLinkPolicy = cfg.policy
	p.prov, err = provision.NewProvisioner(v, p.accounts, p.tokens, opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	oauthHandler := p.prov.Handler()
	mux.Handle("/", oauthHandler)
	mux.Handle(provision.PathRevocationEvent, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.revocationCalls.Add(1)
		if p.revocationFailures.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		oauthHandler.ServeHTTP(w, r)
	}))
	mux.Handle("GET /v1/whoami", p.prov.Middleware("zones:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := provision.IdentityFromContext(r.Context())
		if !ok {
			http.Error(w, "no identity", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"account_id": id.AccountID, "iss": id.User.Issuer, "sub": id.User.Subject})
	})))
	handler = mux
	return p
}

// postToken posts form to the token endpoint and decodes the JSON answer.
func postToken(t testing.TB, p *provider, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := p.srv.Client().PostForm(p.srv.URL+provision.PathToken, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token endpoint body: %v", err)
	}
	return resp, body
}

func jwtBearer(assertion string) url.Values {
	return url.Values{"grant_type": {authz.GrantTypeJWTBearer}, "assertion": {assertion}}
}

// whoami calls the protected API with the vault's token for ref.
func whoami(t testing.TB, ctx context.Context, p *provider, o *orchestrator, project, ref string) (int, map[string]string, http.Header) {
	t.Helper()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, p.srv.Client())
	client := oauth2.NewClient(ctx, o.vlt.TokenSource(project, ref))
	resp, err := client.Get(p.srv.URL + "/v1/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, body, resp.Header
}

func storeCredential(t testing.TB, o *orchestrator, project, provider string, tok *oauth2.Token) {
	t.Helper()
	err := o.vlt.Put(context.Background(), vault.Credential{
		Project: project, Provider: provider, Service: "dns",
		AccessToken: vault.Secret(tok.AccessToken), TokenType: tok.TokenType, Expiry: tok.Expiry,
		Scopes:    strings.Fields(fmt.Sprint(tok.Extra("scope"))),
		AccountID: fmt.Sprint(tok.Extra("account_id")), LinkAction: fmt.Sprint(tok.Extra("link_action")),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tokenFromBody turns a decoded token response into an oauth2.Token.
func tokenFromBody(body map[string]any) *oauth2.Token {
	tok := &oauth2.Token{AccessToken: body["access_token"].(string), TokenType: body["token_type"].(string)}
	if e, ok := body["expires_in"].(float64); ok {
		tok.Expiry = time.Now().Add(time.Duration(e) * time.Second)
	}
	return tok.WithExtra(body)
}

func TestE2ENewUserAutoCreated(t *testing.T) {
	ctx := t.Context()
	o := newOrchestrator(t, orchIssuer)
	p := newProvider(t, "acme", providerConfig{trust: []*orchestrator{o}, issuers: []string{orchIssuer}})
	u := user{sub: "user-new", email: "New@Example.com", verified: true}

	resp, body := postToken(t, p, jwtBearer(o.attest(t, "acme", u, false)))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %v", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if body["link_action"] != authz.LinkCreated || body["token_type"] != "Bearer" || body["scope"] != "dns:write zones:read" {
		t.Fatalf("token response = %v", body)
	}
	accountID := body["account_id"].(string)
	acct, err := p.accounts.FindByEmail(ctx, "new@example.com")
	if err != nil || acct.ID != accountID {
		t.Fatalf("account = %+v, %v; want %s", acct, err, accountID)
	}
	if len(acct.Consents) != 1 || acct.Consents[0].TermsVersion != termsVersion || acct.Consents[0].Receipt == "" {
		t.Fatalf("consent receipt not stored with the account: %+v", acct.Consents)
	}

	storeCredential(t, o, "proj_1", "acme", tokenFromBody(body))
	env, err := o.vlt.Env(ctx, "proj_1", "acme/dns")
	if err != nil || len(env) == 0 {
		t.Fatalf("vault env = %v, %v", env, err)
	}
	status, who, _ := whoami(t, ctx, p, o, "proj_1", "acme/dns")
	if status != http.StatusOK || who["account_id"] != accountID || who["iss"] != orchIssuer || who["sub"] != "user-new" {
		t.Fatalf("whoami = %d %v", status, who)
	}

	// The next attestation of the same user reaches the same account.
	_, body = postToken(t, p, jwtBearer(o.attest(t, "acme", u, true)))
	if body["link_action"] != authz.LinkExisting || body["account_id"] != accountID {
		t.Fatalf("second provisioning = %v", body)
	}
}

func TestE2EConcurrentFirstRequestsCreateOneAccount(t *testing.T) {
	o := newOrchestrator(t, orchIssuer)
	p := newProvider(t, "acme", providerConfig{trust: []*orchestrator{o}, issuers: []string{orchIssuer}})
	u := user{sub: "user-race", email: "race@example.com", verified: true}
	const n = 16
	assertions := make([]string, n)
	for i := range assertions {
		assertions[i] = o.attest(t, "acme", u, false)
	}
	var wg sync.WaitGroup
	var created atomic.Int32
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := p.srv.Client().PostForm(p.srv.URL+provision.PathToken, jwtBearer(assertions[i]))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var tr authz.TokenResponse
			if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("request %d: status %d, %v", i, resp.StatusCode, err)
				return
			}
			if tr.LinkAction == authz.LinkCreated {
				created.Add(1)
			}
			ids[i] = tr.AccountID
		}()
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("%d responses said created, want 1", created.Load())
	}
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("request %d got account %q, request 0 got %q", i, ids[i], ids[0])
		}
	}
}

// discover follows a consent_required answer to the provider's metadata,
// as an orchestrator would, and returns the oauth2 endpoint.
func discover(t *testing.T, ctx context.Context, p *provider, resp *http.Response, body map[string]any) *authz.AuthorizationServerMetadata {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized || body["error"] != "consent_required" {
		t.Fatalf("want 401 consent_required, got %d %v", resp.StatusCode, body)
	}
	prmURL, err := authz.ResourceMetadataURL(resp.Header)
	if err != nil || prmURL == "" {
		t.Fatalf("WWW-Authenticate %q: resource_metadata %q, %v", resp.Header.Get("WWW-Authenticate"), prmURL, err)
	}
	prm, err := authz.FetchResourceMetadata(ctx, p.srv.Client(), prmURL, p.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(prm.AuthorizationServers) != 1 || body["authorization_server"] != prm.AuthorizationServers[0] {
		t.Fatalf("authorization servers %v, body hint %v", prm.AuthorizationServers, body["authorization_server"])
	}
	asm, err := authz.FetchServerMetadata(ctx, p.srv.Client(), prm.AuthorizationServers[0])
	if err != nil {
		t.Fatal(err)
	}
	return asm
}

func TestE2EExistingAccountDeviceFlow(t *testing.T) {
	ctx := t.Context()
	o := newOrchestrator(t, orchIssuer)
	other := newOrchestrator(t, "https://other-orchestrator.example")
	p := newProvider(t, "acme", providerConfig{
		trust: []*orchestrator{o, other}, issuers: []string{orchIssuer, "https://other-orchestrator.example"},
	})
	if err := p.accounts.Seed(context.Background(), provision.Account{ID: "acct_existing", Email: "old@example.com", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	u := user{sub: "user-old", email: "old@example.com", verified: true}

	resp, body := postToken(t, p, jwtBearer(o.attest(t, "acme", u, false)))
	asm := discover(t, ctx, p, resp, body)
	if asm.DeviceAuthorizationEndpoint == "" {
		t.Fatal("no device_authorization_endpoint")
	}

	cfg := &oauth2.Config{ClientID: orchIssuer, Endpoint: asm.Endpoint()}
	octx := context.WithValue(ctx, oauth2.HTTPClient, p.srv.Client())
	da, err := cfg.DeviceAuth(octx, oauth2.SetAuthURLParam("assertion", o.attest(t, "acme", u, true)))
	if err != nil {
		t.Fatal(err)
	}
	if da.VerificationURIComplete == "" || da.Interval != 1 {
		t.Fatalf("device authorization = %+v", da)
	}
	// The simulated human signs in at the provider, sees who asks, approves.
	pending, err := p.prov.PendingDevice(ctx, strings.ToLower(da.UserCode))
	if err != nil || pending.Email != "old@example.com" || pending.User.Issuer != orchIssuer {
		t.Fatalf("pending = %+v, %v", pending, err)
	}
	if err := p.prov.ApproveDevice(ctx, da.UserCode, "acct_existing"); err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.DeviceAccessToken(octx, da)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("link_action") != authz.LinkExisting || tok.Extra("account_id") != "acct_existing" {
		t.Fatalf("device token extras: link_action=%v account_id=%v", tok.Extra("link_action"), tok.Extra("account_id"))
	}
	storeCredential(t, o, "proj_1", "acme", tok)
	status, who, _ := whoami(t, ctx, p, o, "proj_1", "acme/dns")
	if status != http.StatusOK || who["account_id"] != "acct_existing" {
		t.Fatalf("whoami = %d %v", status, who)
	}
	// The device code is single use.
	_, body = postToken(t, p, url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "client_id": {orchIssuer}, "device_code": {da.DeviceCode}})
	if body["error"] != "invalid_grant" {
		t.Fatalf("reused device code: %v", body)
	}

	// Linked now: the next attestation gets credentials directly.
	resp, body = postToken(t, p, jwtBearer(o.attest(t, "acme", u, true)))
	if resp.StatusCode != http.StatusOK || body["link_action"] != authz.LinkExisting || body["account_id"] != "acct_existing" {
		t.Fatalf("after linking: %d %v", resp.StatusCode, body)
	}

	// The same email attested by another orchestrator never reaches the
	// account silently.
	resp, body = postToken(t, p, jwtBearer(other.attest(t, "acme", u, false)))
	if resp.StatusCode != http.StatusUnauthorized || body["error"] != "consent_required" {
		t.Fatalf("other orchestrator: %d %v", resp.StatusCode, body)
	}
}

func TestE2EExistingAccountCodeFlowPKCE(t *testing.T) {
	ctx := t.Context()
	o := newOrchestrator(t, orchIssuer)
	// The simulated human is signed in at the provider as X-Test-Account.
	authorize := provision.AuthorizerFunc(func(w http.ResponseWriter, r *http.Request, req *provision.AuthorizationRequest) (string, error) {
		switch acct := r.Header.Get("X-Test-Account"); acct {
		case "":
			return "", authz.ErrAccessDenied
		default:
			return acct, nil
		}
	})
	p := newProvider(t, "acme", providerConfig{trust: []*orchestrator{o}, issuers: []string{orchIssuer}, authorize: authorize})
	if err := p.accounts.Seed(context.Background(), provision.Account{ID: "acct_code", Email: "code@example.com", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	u := user{sub: "user-code", email: "code@example.com", verified: true}
	resp, body := postToken(t, p, jwtBearer(o.attest(t, "acme", u, false)))
	asm := discover(t, ctx, p, resp, body)
	if asm.AuthorizationEndpoint == "" || len(asm.CodeChallengeMethodsSupported) != 1 || asm.CodeChallengeMethodsSupported[0] != "S256" {
		t.Fatalf("server metadata = %+v", asm)
	}

	cfg := &oauth2.Config{ClientID: orchIssuer, Endpoint: asm.Endpoint(), RedirectURL: callbackURL}
	verifier := oauth2.GenerateVerifier()
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	follow := func(authURL, account string) url.Values {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
		if account != "" {
			req.Header.Set("X-Test-Account", account)
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize status %d", resp.StatusCode)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || !strings.HasPrefix(loc.String(), callbackURL) {
			t.Fatalf("redirect to %q", resp.Header.Get("Location"))
		}
		return loc.Query()
	}

	// plain PKCE is refused.
	plainURL := cfg.AuthCodeURL("st-plain", oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
	if q := follow(plainURL, "acct_code"); q.Get("error") != "invalid_request" || q.Get("code") != "" {
		t.Fatalf("plain PKCE: %v", q)
	}
	// No PKCE at all is refused.
	if q := follow(cfg.AuthCodeURL("st-none"), "acct_code"); q.Get("error") != "invalid_request" {
		t.Fatalf("missing PKCE: %v", q)
	}
	// The human refuses.
	if q := follow(cfg.AuthCodeURL("st-deny", oauth2.S256ChallengeOption(verifier)), ""); q.Get("error") != "access_denied" || q.Get("state") != "st-deny" {
		t.Fatalf("denied: %v", q)
	}

	q := follow(cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)), "acct_code")
	if q.Get("state") != "st-1" || q.Get("iss") != p.srv.URL || q.Get("code") == "" {
		t.Fatalf("authorization response = %v", q)
	}
	octx := context.WithValue(ctx, oauth2.HTTPClient, p.srv.Client())
	// A wrong verifier burns the code.
	if _, err := cfg.Exchange(octx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("assertion", o.attest(t, "acme", u, true))); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("wrong verifier: %v", err)
	}
	q = follow(cfg.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier)), "acct_code")
	tok, err := cfg.Exchange(octx, q.Get("code"), oauth2.VerifierOption(verifier),
		oauth2.SetAuthURLParam("assertion", o.attest(t, "acme", u, true)))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("link_action") != authz.LinkExisting || tok.Extra("account_id") != "acct_code" {
		t.Fatalf("extras: %v %v", tok.Extra("link_action"), tok.Extra("account_id"))
	}
	// Single use.
	if _, err := cfg.Exchange(octx, q.Get("code"), oauth2.VerifierOption(verifier),
		oauth2.SetAuthURLParam("assertion", o.attest(t, "acme", u, true))); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("reused code: %v", err)
	}
	storeCredential(t, o, "proj_1", "acme", tok)
	if status, who, _ := whoami(t, ctx, p, o, "proj_1", "acme/dns"); status != http.StatusOK || who["account_id"] != "acct_code" {
		t.Fatalf("whoami = %d %v", status, who)
	}
}

func isOAuthError(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code
}

func TestE2ERevocation(t *testing.T) {
	ctx := t.Context()
	o := newOrchestrator(t, orchIssuer)
	acme := newProvider(t, "acme", providerConfig{trust: []*orchestrator{o}, issuers: []string{orchIssuer}})
	beta := newProvider(t, "beta", providerConfig{trust: []*orchestrator{o}, issuers: []string{orchIssuer}})
	u := user{sub: "user-rev", email: "rev@example.com", verified: true}
	for _, p := range []*provider{acme, beta} {
		resp, body := postToken(t, p, jwtBearer(o.attest(t, p.id, u, false)))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", p.id, resp.StatusCode, body)
		}
		storeCredential(t, o, "proj_1", p.id, tokenFromBody(body))
		if status, _, _ := whoami(t, ctx, p, o, "proj_1", p.id+"/dns"); status != http.StatusOK {
			t.Fatalf("%s before revocation: %d", p.id, status)
		}
	}
	// Keep the tokens to try them after the vault forgot them.
	creds, err := o.vlt.List(ctx, "proj_1", "")
	if err != nil || len(creds) != 2 {
		t.Fatalf("vault = %v, %v", creds, err)
	}
	beta.revocationFailures.Store(2)

	var sleeps []time.Duration
	var mu sync.Mutex
	rv, err := vault.NewRevoker(o.att, o.vlt, vault.StaticTargets{
		"acme": {Audience: "acme", Endpoint: acme.srv.URL + provision.PathRevocationEvent},
		"beta": {Audience: "beta", Endpoint: beta.srv.URL + provision.PathRevocationEvent},
	}, acme.srv.Client(), &vault.RevokerOptions{
		MaxAttempts: 4,
		Subject:     func(*vault.Credential) string { return u.sub },
		Sleep: func(_ context.Context, d time.Duration) error {
			mu.Lock()
			sleeps = append(sleeps, d)
			mu.Unlock()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rv.Revoke(ctx, vault.RevokeRequest{Project: "proj_1"})
	if err != nil {
		t.Fatalf("Revoke: %v (report %+v)", err, rep)
	}
	got := map[string]vault.RevocationResult{}
	for _, r := range rep.Results {
		got[r.Provider] = r
	}
	if r := got["acme"]; !r.Revoked || r.Attempts != 1 || r.Err != nil {
		t.Errorf("acme result = %+v", r)
	}
	if r := got["beta"]; !r.Revoked || r.Attempts != 3 || r.Err != nil {
		t.Errorf("beta result = %+v, want revoked after 3 attempts", r)
	}
	if len(sleeps) != 2 || sleeps[1] < sleeps[0]/2 {
		t.Errorf("backoff sleeps = %v, want two growing waits", sleeps)
	}
	if beta.revocationCalls.Load() != 3 {
		t.Errorf("beta saw %d revocation calls, want 3", beta.revocationCalls.Load())
	}
	if left, _ := o.vlt.List(ctx, "proj_1", ""); len(left) != 0 {
		t.Errorf("vault still holds %d credentials", len(left))
	}
	// The providers' middleware now rejects the tokens.
	for _, c := range creds {
		p := map[string]*provider{"acme": acme, "beta": beta}[c.Provider]
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.srv.URL+"/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+c.AccessToken.Reveal())
		resp, err := p.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		chs, _ := authz.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate")...)
		if resp.StatusCode != http.StatusUnauthorized || len(chs) != 1 || chs[0].Params["error"] != "invalid_token" || chs[0].Params["resource_metadata"] == "" {
			t.Errorf("%s after revocation: %d %q", c.Provider, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestE2ERevocationRejectedIsNotRetried(t *testing.T) {
	ctx := t.Context()
	o := newOrchestrator(t, orchIssuer)
	acme := newProvider(t, "acme", providerConfig{trust: []*orchestrator{o}, issuers: []string{orchIssuer}})
	_, body := postToken(t, acme, jwtBearer(o.attest(t, "acme", user{sub: "u", email: "u@example.com", verified: true}, false)))
	storeCredential(t, o, "proj_1", "acme", tokenFromBody(body))
	// Wrong audience: the provider's verifier refuses with 401.
	rv, err := vault.NewRevoker(o.att, o.vlt, vault.StaticTargets{
		"acme": {Audience: "not-acme", Endpoint: acme.srv.URL + provision.PathRevocationEvent},
	}, acme.srv.Client(), &vault.RevokerOptions{Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rv.Revoke(ctx, vault.RevokeRequest{Project: "proj_1", Provider: "acme"})
	if !errors.Is(err, vault.ErrRevocationIncomplete) {
		t.Fatalf("err = %v, want ErrRevocationIncomplete", err)
	}
	f := rep.Failed()
	if len(f) != 1 || f[0].Attempts != 1 || !errors.Is(f[0].Err, vault.ErrRevocationRejected) {
		t.Fatalf("failed = %+v", f)
	}
	if left, _ := o.vlt.List(ctx, "proj_1", ""); len(left) != 1 {
		t.Fatalf("credential must stay in the vault after a failed revocation, have %d", len(left))
	}
}

// forge builds a compact JWS-shaped string from raw header and claims with
// a junk signature.
func forge(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func TestProvisionerRejectsAttacks(t *testing.T) {
	o := newOrchestrator(t, orchIssuer)
	stranger := newOrchestrator(t, "https://stranger.example")
	p := newProvider(t, "acme", providerConfig{trust: []*orchestrator{o}, issuers: []string{orchIssuer}})
	ctx := context.Background()
	good := user{sub: "victim", email: "victim@example.com", verified: true}
	now := time.Now().Unix()
	claims := func() map[string]any {
		return map[string]any{"iss": orchIssuer, "sub": "victim", "aud": "acme", "email": good.email, "email_verified": true,
			"jti": fmt.Sprint(time.Now().UnixNano()), "iat": now, "nbf": now, "exp": now + 60}
	}
	agentConsent, err := o.att.Sign(ctx, authz.TypeConsent, map[string]any{
		"sub": "victim", "aud": "acme", "terms_url": termsURL, "terms_version": termsVersion,
		"accepted_at": now - 10, "human": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	wrongTyp, err := o.att.Sign(ctx, "JWT", claims())
	if err != nil {
		t.Fatal(err)
	}
	oldTerms, err := o.att.SignConsent(ctx, authz.ConsentReceipt{Subject: "victim", Provider: "acme", TermsURL: termsURL,
		TermsVersion: "2020-01", AcceptedAt: time.Now().Add(-time.Hour), Human: true})
	if err != nil {
		t.Fatal(err)
	}
	attestWith := func(consent string) string {
		tok, err := o.att.Attest(ctx, authz.AttestRequest{Audience: "acme", Subject: "victim", Email: good.email, EmailVerified: true, Consent: consent})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	noConsent := attestWith("")
	// First use fails on the missing consent but burns the jti.
	if _, err := p.prov.Exchange(ctx, jwtBearer(noConsent)); !errors.Is(err, authz.ErrTermsNotAccepted) {
		t.Fatalf("setup: %v", err)
	}

	cases := []struct {
		name string
		// mk returns a fresh assertion: it runs once for Exchange and once
		// over HTTP (a replay case returns the same burnt token).
		mk   func() string
		want []error
	}{
		{"unsigned alg none", func() string {
			return forge(map[string]any{"alg": "none", "typ": authz.TypeAttestation}, claims())
		}, []error{authz.ErrInvalidGrant, authz.ErrAlgorithmNotAllowed}},
		{"HS256", func() string {
			return forge(map[string]any{"alg": "HS256", "typ": authz.TypeAttestation, "kid": "k1"}, claims())
		}, []error{authz.ErrInvalidGrant, authz.ErrAlgorithmNotAllowed}},
		{"wrong typ", func() string { return wrongTyp }, []error{authz.ErrInvalidGrant, authz.ErrWrongTokenType}},
		{"replayed jti", func() string { return noConsent }, []error{authz.ErrInvalidGrant, authz.ErrTokenReplayed}},
		{"unverified email", func() string { return o.attest(t, "acme", user{sub: "victim", email: good.email}, false) }, []error{authz.ErrEmailNotVerified}},
		{"missing consent", func() string { return attestWith("") }, []error{authz.ErrTermsNotAccepted}},
		{"agent-only consent", func() string { return attestWith(agentConsent) }, []error{authz.ErrTermsNotAccepted, authz.ErrHumanAcceptanceRequired}},
		{"outdated terms", func() string { return attestWith(oldTerms) }, []error{authz.ErrTermsNotAccepted}},
		{"other audience", func() string { return o.attest(t, "beta", good, false) }, []error{authz.ErrInvalidGrant, authz.ErrWrongAudience}},
		{"untrusted issuer", func() string { return stranger.attest(t, "acme", good, false) }, []error{authz.ErrInvalidGrant, authz.ErrUnknownIssuer}},
		{"garbage", func() string { return "not-a-jwt" }, []error{authz.ErrInvalidGrant}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := p.prov.Exchange(ctx, jwtBearer(c.mk()))
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Errorf("err = %v; want errors.Is %v", err, w)
				}
			}
			if _, err := p.accounts.FindByEmail(ctx, good.email); !errors.Is(err, provision.ErrAccountNotFound) {
				t.Fatalf("an account was created: %v", err)
			}
			// Over HTTP the same attack is an RFC 6749 error body.
			resp, body := postToken(t, p, jwtBearer(c.mk()))
			want := authz.AsError(c.want[0])
			if resp.StatusCode != want.Status || body["error"] != want.Code {
				t.Errorf("HTTP: %d %v; want %d %s", resp.StatusCode, body, want.Status, want.Code)
			}
		})
	}
	// The honest request still works afterwards.
	if _, err := p.prov.Exchange(ctx, jwtBearer(o.attest(t, "acme", good, false))); err != nil {
		t.Fatalf("honest request: %v", err)
	}
}

// TestE2ESQLStores runs provisioning, the middleware and revocation over
// the SQL stores (SQLite always, PostgreSQL when configured).
func TestE2ESQLStores(t *testing.T) {
	for _, dialect := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres} {
		t.Run(dialect.String(), func(t *testing.T) {
			ctx := t.Context()
			var db *sql.DB
			if dialect == sqlstore.SQLite {
				db = sqltest.SQLite(t, sqltest.SQLitePath(t))
			} else {
				db = sqltest.Postgres(t)
			}
			accounts, err := sqlstore.NewAccountStore(db, dialect, nil)
			if err != nil {
				t.Fatal(err)
			}
			tokens, err := sqlstore.NewTokenStore(db, dialect, nil)
			if err != nil {
				t.Fatal(err)
			}
			replay, err := sqlstore.NewReplayStore(db, dialect, nil)
			if err != nil {
				t.Fatal(err)
			}
			grants, err := sqlstore.NewGrantStore(db, dialect, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []interface{ Migrate(context.Context) error }{accounts, tokens, replay, grants} {
				if err := m.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
			}
			o := newOrchestrator(t, orchIssuer)
			v, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: orchIssuer, Keys: o.att.JWKS()}}, replay, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Two instances of the provider share every store.
			var instances [2]*provision.Provisioner
			for i := range instances {
				instances[i], err = provision.NewProvisioner(v, accounts, tokens, &provision.ProvisionerOptions{
					Issuer: "https://acme.example", TermsVersion: termsVersion, DefaultScopes: []string{"zones:read"},
					Grants: grants, Logger: slog.New(slog.DiscardHandler),
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			p := instances[0]
			u := user{sub: "sql-user", email: "sql@example.com", verified: true}
			const n = 8
			assertions := make([]string, n)
			for i := range assertions {
				assertions[i] = o.attest(t, "acme", u, false)
			}
			results := make([]*authz.TokenResponse, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tr, err := p.Exchange(ctx, jwtBearer(assertions[i]))
					if err != nil {
						t.Errorf("exchange %d: %v", i, err)
						return
					}
					results[i] = tr
				}()
			}
			wg.Wait()
			created := 0
			for _, r := range results {
				if r == nil {
					t.FailNow()
				}
				if r.LinkAction == authz.LinkCreated {
					created++
				}
				if r.AccountID != results[0].AccountID {
					t.Fatalf("two accounts: %s and %s", r.AccountID, results[0].AccountID)
				}
			}
			if created != 1 {
				t.Fatalf("%d created, want 1", created)
			}
			api := p.Middleware("zones:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			call := func(tok string) int {
				req := httptest.NewRequest(http.MethodGet, "/v1/zones", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				api.ServeHTTP(rec, req)
				return rec.Code
			}
			if c := call(results[3].AccessToken); c != http.StatusOK {
				t.Fatalf("token rejected: %d", c)
			}
			ev, err := o.att.Sign(ctx, authz.TypeRevocation, authz.RevocationEvent{Audience: "acme", AccountID: results[0].AccountID, Subject: u.sub})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := p.HandleRevocation(ctx, ev); err != nil || n != 8 {
				t.Fatalf("revocation = %d, %v; want all 8 tokens", n, err)
			}
			for _, r := range results {
				if c := call(r.AccessToken); c != http.StatusUnauthorized {
					t.Fatalf("revoked token answered %d", c)
				}
			}

			// A device flow started on one instance, approved through the
			// other and redeemed on the first.
			if err := accounts.Seed(ctx, provision.Account{ID: "acct_sql_old", Email: "old-sql@example.com", CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			old := user{sub: "sql-old", email: "old-sql@example.com", verified: true}
			if _, err := p.Exchange(ctx, jwtBearer(o.attest(t, "acme", old, false))); !errors.Is(err, authz.ErrConsentRequired) {
				t.Fatalf("want consent_required, got %v", err)
			}
			da, err := instances[0].StartDevice(ctx, url.Values{"client_id": {orchIssuer}, "assertion": {o.attest(t, "acme", old, true)}})
			if err != nil {
				t.Fatal(err)
			}
			if err := instances[1].ApproveDevice(ctx, da.UserCode, "acct_sql_old"); err != nil {
				t.Fatal(err)
			}
			tr, err := instances[0].Exchange(ctx, url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "client_id": {orchIssuer}, "device_code": {da.DeviceCode}})
			if err != nil || tr.LinkAction != authz.LinkExisting || tr.AccountID != "acct_sql_old" {
				t.Fatalf("device token = %v, %v", tr, err)
			}
			if _, err := instances[1].Exchange(ctx, url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "client_id": {orchIssuer}, "device_code": {da.DeviceCode}}); !errors.Is(err, authz.ErrInvalidGrant) {
				t.Fatalf("device code reused on the other instance: %v", err)
			}
		})
	}
}

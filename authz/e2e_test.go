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

	"golang.org/x/oauth2"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/sqlstore"
	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/internal/authztesting"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// orchestrator is the orchestrator side of the tests: an attester and a vault.
type orchestrator struct {
	*authztesting.Orchestrator
	vlt *vault.Vault
}

func newOrchestrator(t testing.TB, issuer string) *orchestrator {
	t.Helper()
	o := authztesting.NewOrchestrator(t, issuer)
	vlt, err := vault.NewVault(vault.NewMemoryVaultStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &orchestrator{Orchestrator: o, vlt: vlt}
}

// whoami calls the protected API with the vault's token for ref.
func whoami(t testing.TB, ctx context.Context, p *authztesting.Provider, o *orchestrator, project, ref string) (int, map[string]string, http.Header) {
	t.Helper()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, p.Server.Client())
	client := oauth2.NewClient(ctx, o.vlt.TokenSource(project, ref))
	resp, err := client.Get(p.Server.URL + "/v1/whoami")
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
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o.Orchestrator}, Issuers: []string{authztesting.OrchestratorIssuer}})
	u := authztesting.User{Sub: "user-new", Email: "New@Example.com", Verified: true}

	resp, body := authztesting.PostToken(t, p, authztesting.JWTBearer(o.Attest(t, "acme", u, false)))
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
	acct, err := p.Accounts.FindByEmail(ctx, "new@example.com")
	if err != nil || acct.ID != accountID {
		t.Fatalf("account = %+v, %v; want %s", acct, err, accountID)
	}
	if len(acct.Consents) != 1 || acct.Consents[0].TermsVersion != authztesting.TermsVersion || acct.Consents[0].Receipt == "" {
		t.Fatalf("consent receipt not stored with the account: %+v", acct.Consents)
	}

	storeCredential(t, o, "proj_1", "acme", tokenFromBody(body))
	env, err := o.vlt.Env(ctx, "proj_1", "acme/dns")
	if err != nil || len(env) == 0 {
		t.Fatalf("vault env = %v, %v", env, err)
	}
	status, who, _ := whoami(t, ctx, p, o, "proj_1", "acme/dns")
	if status != http.StatusOK || who["account_id"] != accountID || who["iss"] != authztesting.OrchestratorIssuer || who["sub"] != "user-new" {
		t.Fatalf("whoami = %d %v", status, who)
	}

	// The next attestation of the same user reaches the same account.
	_, body = authztesting.PostToken(t, p, authztesting.JWTBearer(o.Attest(t, "acme", u, true)))
	if body["link_action"] != authz.LinkExisting || body["account_id"] != accountID {
		t.Fatalf("second provisioning = %v", body)
	}
}

func TestE2EConcurrentFirstRequestsCreateOneAccount(t *testing.T) {
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o.Orchestrator}, Issuers: []string{authztesting.OrchestratorIssuer}})
	u := authztesting.User{Sub: "user-race", Email: "race@example.com", Verified: true}
	const n = 16
	assertions := make([]string, n)
	for i := range assertions {
		assertions[i] = o.Attest(t, "acme", u, false)
	}
	var wg sync.WaitGroup
	var created atomic.Int32
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := p.Server.Client().PostForm(p.Server.URL+provision.PathToken, authztesting.JWTBearer(assertions[i]))
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
func discover(t *testing.T, ctx context.Context, p *authztesting.Provider, resp *http.Response, body map[string]any) *authz.AuthorizationServerMetadata {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized || body["error"] != "consent_required" {
		t.Fatalf("want 401 consent_required, got %d %v", resp.StatusCode, body)
	}
	prmURL, err := authz.ResourceMetadataURL(resp.Header)
	if err != nil || prmURL == "" {
		t.Fatalf("WWW-Authenticate %q: resource_metadata %q, %v", resp.Header.Get("WWW-Authenticate"), prmURL, err)
	}
	prm, err := authz.FetchResourceMetadata(ctx, p.Server.Client(), prmURL, p.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(prm.AuthorizationServers) != 1 || body["authorization_server"] != prm.AuthorizationServers[0] {
		t.Fatalf("authorization servers %v, body hint %v", prm.AuthorizationServers, body["authorization_server"])
	}
	asm, err := authz.FetchServerMetadata(ctx, p.Server.Client(), prm.AuthorizationServers[0])
	if err != nil {
		t.Fatal(err)
	}
	return asm
}

func TestE2EExistingAccountDeviceFlow(t *testing.T) {
	ctx := t.Context()
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	other := newOrchestrator(t, "https://other-orchestrator.example")
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{
		Trust: []*authztesting.Orchestrator{o.Orchestrator, other.Orchestrator}, Issuers: []string{authztesting.OrchestratorIssuer, "https://other-orchestrator.example"},
	})
	if err := p.Accounts.Seed(context.Background(), provision.Account{ID: "acct_existing", Email: "old@example.com", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	u := authztesting.User{Sub: "user-old", Email: "old@example.com", Verified: true}

	resp, body := authztesting.PostToken(t, p, authztesting.JWTBearer(o.Attest(t, "acme", u, false)))
	asm := discover(t, ctx, p, resp, body)
	if asm.DeviceAuthorizationEndpoint == "" {
		t.Fatal("no device_authorization_endpoint")
	}

	cfg := &oauth2.Config{ClientID: authztesting.OrchestratorIssuer, Endpoint: asm.Endpoint()}
	octx := context.WithValue(ctx, oauth2.HTTPClient, p.Server.Client())
	da, err := cfg.DeviceAuth(octx, oauth2.SetAuthURLParam("assertion", o.Attest(t, "acme", u, true)))
	if err != nil {
		t.Fatal(err)
	}
	if da.VerificationURIComplete == "" || da.Interval != 1 {
		t.Fatalf("device authorization = %+v", da)
	}
	// The simulated human signs in at the provider, sees who asks, approves.
	pending, err := p.Provisioner.PendingDevice(ctx, strings.ToLower(da.UserCode))
	if err != nil || pending.Email != "old@example.com" || pending.User.Issuer != authztesting.OrchestratorIssuer {
		t.Fatalf("pending = %+v, %v", pending, err)
	}
	if err := p.Provisioner.ApproveDevice(ctx, da.UserCode, "acct_existing"); err != nil {
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
	_, body = authztesting.PostToken(t, p, url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "client_id": {authztesting.OrchestratorIssuer}, "device_code": {da.DeviceCode}})
	if body["error"] != "invalid_grant" {
		t.Fatalf("reused device code: %v", body)
	}

	// Linked now: the next attestation gets credentials directly.
	resp, body = authztesting.PostToken(t, p, authztesting.JWTBearer(o.Attest(t, "acme", u, true)))
	if resp.StatusCode != http.StatusOK || body["link_action"] != authz.LinkExisting || body["account_id"] != "acct_existing" {
		t.Fatalf("after linking: %d %v", resp.StatusCode, body)
	}

	// The same email attested by another orchestrator never reaches the
	// account silently.
	resp, body = authztesting.PostToken(t, p, authztesting.JWTBearer(other.Attest(t, "acme", u, false)))
	if resp.StatusCode != http.StatusUnauthorized || body["error"] != "consent_required" {
		t.Fatalf("other orchestrator: %d %v", resp.StatusCode, body)
	}
}

func TestE2EExistingAccountCodeFlowPKCE(t *testing.T) {
	ctx := t.Context()
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	// The simulated human is signed in at the provider as X-Test-Account.
	authorize := provision.AuthorizerFunc(func(w http.ResponseWriter, r *http.Request, req *provision.AuthorizationRequest) (string, error) {
		switch acct := r.Header.Get("X-Test-Account"); acct {
		case "":
			return "", authz.ErrAccessDenied
		default:
			return acct, nil
		}
	})
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o.Orchestrator}, Issuers: []string{authztesting.OrchestratorIssuer}, Authorize: authorize})
	if err := p.Accounts.Seed(context.Background(), provision.Account{ID: "acct_code", Email: "code@example.com", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	u := authztesting.User{Sub: "user-code", Email: "code@example.com", Verified: true}
	resp, body := authztesting.PostToken(t, p, authztesting.JWTBearer(o.Attest(t, "acme", u, false)))
	asm := discover(t, ctx, p, resp, body)
	if asm.AuthorizationEndpoint == "" || len(asm.CodeChallengeMethodsSupported) != 1 || asm.CodeChallengeMethodsSupported[0] != "S256" {
		t.Fatalf("server metadata = %+v", asm)
	}

	cfg := &oauth2.Config{ClientID: authztesting.OrchestratorIssuer, Endpoint: asm.Endpoint(), RedirectURL: authztesting.CallbackURL}
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
		if err != nil || !strings.HasPrefix(loc.String(), authztesting.CallbackURL) {
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
	if q.Get("state") != "st-1" || q.Get("iss") != p.Server.URL || q.Get("code") == "" {
		t.Fatalf("authorization response = %v", q)
	}
	octx := context.WithValue(ctx, oauth2.HTTPClient, p.Server.Client())
	// A wrong verifier burns the code.
	if _, err := cfg.Exchange(octx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("assertion", o.Attest(t, "acme", u, true))); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("wrong verifier: %v", err)
	}
	q = follow(cfg.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier)), "acct_code")
	tok, err := cfg.Exchange(octx, q.Get("code"), oauth2.VerifierOption(verifier),
		oauth2.SetAuthURLParam("assertion", o.Attest(t, "acme", u, true)))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("link_action") != authz.LinkExisting || tok.Extra("account_id") != "acct_code" {
		t.Fatalf("extras: %v %v", tok.Extra("link_action"), tok.Extra("account_id"))
	}
	// Single use.
	if _, err := cfg.Exchange(octx, q.Get("code"), oauth2.VerifierOption(verifier),
		oauth2.SetAuthURLParam("assertion", o.Attest(t, "acme", u, true))); !isOAuthError(err, "invalid_grant") {
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
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	acme := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o.Orchestrator}, Issuers: []string{authztesting.OrchestratorIssuer}})
	beta := authztesting.NewProvider(t, "beta", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o.Orchestrator}, Issuers: []string{authztesting.OrchestratorIssuer}})
	u := authztesting.User{Sub: "user-rev", Email: "rev@example.com", Verified: true}
	for _, p := range []*authztesting.Provider{acme, beta} {
		resp, body := authztesting.PostToken(t, p, authztesting.JWTBearer(o.Attest(t, p.ID, u, false)))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", p.ID, resp.StatusCode, body)
		}
		storeCredential(t, o, "proj_1", p.ID, tokenFromBody(body))
		if status, _, _ := whoami(t, ctx, p, o, "proj_1", p.ID+"/dns"); status != http.StatusOK {
			t.Fatalf("%s before revocation: %d", p.ID, status)
		}
	}
	// Keep the tokens to try them after the vault forgot them.
	creds, err := o.vlt.List(ctx, "proj_1", "")
	if err != nil || len(creds) != 2 {
		t.Fatalf("vault = %v, %v", creds, err)
	}
	beta.RevocationFailures.Store(2)

	var sleeps []time.Duration
	var mu sync.Mutex
	rv, err := vault.NewRevoker(o.Attester, o.vlt, vault.StaticTargets{
		"acme": {Audience: "acme", Endpoint: acme.Server.URL + provision.PathRevocationEvent},
		"beta": {Audience: "beta", Endpoint: beta.Server.URL + provision.PathRevocationEvent},
	}, acme.Server.Client(), &vault.RevokerOptions{
		MaxAttempts: 4,
		Subject:     func(*vault.Credential) string { return u.Sub },
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
	if beta.RevocationCalls.Load() != 3 {
		t.Errorf("beta saw %d revocation calls, want 3", beta.RevocationCalls.Load())
	}
	if left, _ := o.vlt.List(ctx, "proj_1", ""); len(left) != 0 {
		t.Errorf("vault still holds %d credentials", len(left))
	}
	// The providers' middleware now rejects the tokens.
	for _, c := range creds {
		p := map[string]*authztesting.Provider{"acme": acme, "beta": beta}[c.Provider]
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.Server.URL+"/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+c.AccessToken.Reveal())
		resp, err := p.Server.Client().Do(req)
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
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	acme := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o.Orchestrator}, Issuers: []string{authztesting.OrchestratorIssuer}})
	_, body := authztesting.PostToken(t, acme, authztesting.JWTBearer(o.Attest(t, "acme", authztesting.User{Sub: "u", Email: "u@example.com", Verified: true}, false)))
	storeCredential(t, o, "proj_1", "acme", tokenFromBody(body))
	// Wrong audience: the provider's verifier refuses with 401.
	rv, err := vault.NewRevoker(o.Attester, o.vlt, vault.StaticTargets{
		"acme": {Audience: "not-acme", Endpoint: acme.Server.URL + provision.PathRevocationEvent},
	}, acme.Server.Client(), &vault.RevokerOptions{Sleep: func(context.Context, time.Duration) error { return nil }})
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
	o := newOrchestrator(t, authztesting.OrchestratorIssuer)
	stranger := newOrchestrator(t, "https://stranger.example")
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o.Orchestrator}, Issuers: []string{authztesting.OrchestratorIssuer}})
	ctx := context.Background()
	good := authztesting.User{Sub: "victim", Email: "victim@example.com", Verified: true}
	now := time.Now().Unix()
	claims := func() map[string]any {
		return map[string]any{"iss": authztesting.OrchestratorIssuer, "sub": "victim", "aud": "acme", "email": good.Email, "email_verified": true,
			"jti": fmt.Sprint(time.Now().UnixNano()), "iat": now, "nbf": now, "exp": now + 60}
	}
	agentConsent, err := o.Attester.Sign(ctx, authz.TypeConsent, map[string]any{
		"sub": "victim", "aud": "acme", "terms_url": authztesting.TermsURL, "terms_version": authztesting.TermsVersion,
		"accepted_at": now - 10, "human": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	wrongTyp, err := o.Attester.Sign(ctx, "JWT", claims())
	if err != nil {
		t.Fatal(err)
	}
	oldTerms, err := o.Attester.SignConsent(ctx, authz.ConsentReceipt{Subject: "victim", Provider: "acme", TermsURL: authztesting.TermsURL,
		TermsVersion: "2020-01", AcceptedAt: time.Now().Add(-time.Hour), Human: true})
	if err != nil {
		t.Fatal(err)
	}
	attestWith := func(consent string) string {
		tok, err := o.Attester.Attest(ctx, authz.AttestRequest{Audience: "acme", Subject: "victim", Email: good.Email, EmailVerified: true, Consent: consent})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	noConsent := attestWith("")
	// First use fails on the missing consent but burns the jti.
	if _, err := p.Provisioner.Exchange(ctx, authztesting.JWTBearer(noConsent)); !errors.Is(err, authz.ErrTermsNotAccepted) {
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
		{"unverified email", func() string { return o.Attest(t, "acme", authztesting.User{Sub: "victim", Email: good.Email}, false) }, []error{authz.ErrEmailNotVerified}},
		{"missing consent", func() string { return attestWith("") }, []error{authz.ErrTermsNotAccepted}},
		{"agent-only consent", func() string { return attestWith(agentConsent) }, []error{authz.ErrTermsNotAccepted, authz.ErrHumanAcceptanceRequired}},
		{"outdated terms", func() string { return attestWith(oldTerms) }, []error{authz.ErrTermsNotAccepted}},
		{"other audience", func() string { return o.Attest(t, "beta", good, false) }, []error{authz.ErrInvalidGrant, authz.ErrWrongAudience}},
		{"untrusted issuer", func() string { return stranger.Attest(t, "acme", good, false) }, []error{authz.ErrInvalidGrant, authz.ErrUnknownIssuer}},
		{"garbage", func() string { return "not-a-jwt" }, []error{authz.ErrInvalidGrant}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := p.Provisioner.Exchange(ctx, authztesting.JWTBearer(c.mk()))
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Errorf("err = %v; want errors.Is %v", err, w)
				}
			}
			if _, err := p.Accounts.FindByEmail(ctx, good.Email); !errors.Is(err, provision.ErrAccountNotFound) {
				t.Fatalf("an account was created: %v", err)
			}
			// Over HTTP the same attack is an RFC 6749 error body.
			resp, body := authztesting.PostToken(t, p, authztesting.JWTBearer(c.mk()))
			want := authz.AsError(c.want[0])
			if resp.StatusCode != want.Status || body["error"] != want.Code {
				t.Errorf("HTTP: %d %v; want %d %s", resp.StatusCode, body, want.Status, want.Code)
			}
		})
	}
	// The honest request still works afterwards.
	if _, err := p.Provisioner.Exchange(ctx, authztesting.JWTBearer(o.Attest(t, "acme", good, false))); err != nil {
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
			o := newOrchestrator(t, authztesting.OrchestratorIssuer)
			v, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: authztesting.OrchestratorIssuer, Keys: o.Attester.JWKS()}}, replay, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Two instances of the provider share every store.
			var instances [2]*provision.Provisioner
			for i := range instances {
				instances[i], err = provision.NewProvisioner(v, accounts, tokens, &provision.ProvisionerOptions{
					Issuer: "https://acme.example", TermsVersion: authztesting.TermsVersion, DefaultScopes: []string{"zones:read"},
					Grants: grants, Logger: slog.New(slog.DiscardHandler),
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			p := instances[0]
			u := authztesting.User{Sub: "sql-user", Email: "sql@example.com", Verified: true}
			const n = 8
			assertions := make([]string, n)
			for i := range assertions {
				assertions[i] = o.Attest(t, "acme", u, false)
			}
			results := make([]*authz.TokenResponse, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tr, err := p.Exchange(ctx, authztesting.JWTBearer(assertions[i]))
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
			ev, err := o.Attester.Sign(ctx, authz.TypeRevocation, authz.RevocationEvent{Audience: "acme", AccountID: results[0].AccountID, Subject: u.Sub})
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
			old := authztesting.User{Sub: "sql-old", Email: "old-sql@example.com", Verified: true}
			if _, err := p.Exchange(ctx, authztesting.JWTBearer(o.Attest(t, "acme", old, false))); !errors.Is(err, authz.ErrConsentRequired) {
				t.Fatalf("want consent_required, got %v", err)
			}
			da, err := instances[0].StartDevice(ctx, url.Values{"client_id": {authztesting.OrchestratorIssuer}, "assertion": {o.Attest(t, "acme", old, true)}})
			if err != nil {
				t.Fatal(err)
			}
			if err := instances[1].ApproveDevice(ctx, da.UserCode, "acct_sql_old"); err != nil {
				t.Fatal(err)
			}
			tr, err := instances[0].Exchange(ctx, url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "client_id": {authztesting.OrchestratorIssuer}, "device_code": {da.DeviceCode}})
			if err != nil || tr.LinkAction != authz.LinkExisting || tr.AccountID != "acct_sql_old" {
				t.Fatalf("device token = %v, %v", tr, err)
			}
			if _, err := instances[1].Exchange(ctx, url.Values{"grant_type": {authz.GrantTypeDeviceCode}, "client_id": {authztesting.OrchestratorIssuer}, "device_code": {da.DeviceCode}}); !errors.Is(err, authz.ErrInvalidGrant) {
				t.Fatalf("device code reused on the other instance: %v", err)
			}
		})
	}
}

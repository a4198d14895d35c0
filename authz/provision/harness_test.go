package provision_test

// The provider half of the harness of authz's end-to-end tests
// (authz/e2e_test.go): an orchestrator reduced to its attester, and a
// provider with in-memory stores behind an httptest server.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/clock"
)

const (
	orchIssuer   = "https://orchestrator.example"
	termsVersion = "2026-04"
	termsURL     = "https://provider.example/terms"
	callbackURL  = "http://127.0.0.1/callback"
)

// orchestrator is the orchestrator side of the tests: an attester.
type orchestrator struct {
	att *authz.Attester
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
	return &orchestrator{att: att}
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

func wantErr(t testing.TB, err error, sentinel *authz.Error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("got error %v, want code %s", err, sentinel.Code)
	}
	if e := authz.AsError(err); e == nil || e.Status != sentinel.Status {
		t.Fatalf("error %v lacks status %d", err, sentinel.Status)
	}
}

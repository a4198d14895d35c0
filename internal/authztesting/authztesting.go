// Package authztesting is the shared test harness of authz's packages: an
// orchestrator reduced to its attester, and a provider with in-memory
// stores behind an httptest server. It is test support for this module's
// own tests, not for users, and only _test.go files import it.
package authztesting

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
	// OrchestratorIssuer is the issuer of the usual Orchestrator.
	OrchestratorIssuer = "https://orchestrator.example"
	// TermsVersion is the version of every Provider's terms.
	TermsVersion = "2026-04"
	// TermsURL is where every Provider's terms are.
	TermsURL = "https://provider.example/terms"
	// CallbackURL is the redirect URI Providers allow OrchestratorIssuer.
	CallbackURL = "http://127.0.0.1/callback"
)

// Orchestrator is the orchestrator side of the tests: an attester.
type Orchestrator struct {
	Attester *authz.Attester
}

// NewOrchestrator returns an Orchestrator with a fresh EdDSA key.
func NewOrchestrator(t testing.TB, issuer string) *Orchestrator {
	t.Helper()
	key, err := authz.GenerateSigningKey("k1", jose.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	att, err := authz.NewAttester(issuer, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Orchestrator{Attester: att}
}

// User is the person an attestation is about.
type User struct {
	Sub, Email string
	Verified   bool
}

// Attest signs an attestation for u at provider aud, with a human consent
// receipt for the current terms unless noConsent.
func (o *Orchestrator) Attest(t testing.TB, aud string, u User, noConsent bool) string {
	t.Helper()
	ctx := context.Background()
	req := authz.AttestRequest{
		Audience: aud, Subject: u.Sub, Email: u.Email, EmailVerified: u.Verified, Name: "Test " + u.Sub,
		Actor: &authz.Actor{Sub: "agent-7"}, Project: "proj_1", Service: aud + "/dns",
	}
	if !noConsent {
		c, err := o.Attester.SignConsent(ctx, authz.ConsentReceipt{
			Subject: u.Sub, Email: u.Email, Provider: aud, TermsURL: TermsURL, TermsVersion: TermsVersion,
			AcceptedAt: time.Now().Add(-time.Minute), Agent: "agent-7", Human: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		req.Consent = c
	}
	tok, err := o.Attester.Attest(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Provider is one Provider: its stores, provisioner and httptest server.
type Provider struct {
	ID          string
	Server      *httptest.Server
	Provisioner *provision.Provisioner
	Accounts    *provision.MemoryAccountStore
	Tokens      *provision.MemoryTokenStore
	// RevocationFailures makes the next N revocation events answer 503.
	RevocationFailures atomic.Int32
	RevocationCalls    atomic.Int32
}

// ProviderConfig says whom a Provider trusts and how it decides.
type ProviderConfig struct {
	Trust     []*Orchestrator
	Issuers   []string
	Authorize provision.AuthorizerFunc
	Clock     *clock.Fake
	Policy    provision.EmailLinkPolicy
}

// NewProvider starts a Provider id, closed when t ends.
func NewProvider(t testing.TB, id string, cfg ProviderConfig) *Provider {
	t.Helper()
	p := &Provider{ID: id, Accounts: provision.NewMemoryAccountStore(), Tokens: provision.NewMemoryTokenStore()}
	var handler http.Handler
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(p.Server.Close)
	var trust []authz.TrustedIssuer
	for i, o := range cfg.Trust {
		trust = append(trust, authz.TrustedIssuer{Issuer: cfg.Issuers[i], Keys: o.Attester.JWKS()})
	}
	v, err := authz.NewVerifier(id, trust, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := &provision.ProvisionerOptions{
		Issuer:        p.Server.URL,
		ResourceName:  id + " API",
		TermsVersion:  TermsVersion,
		TermsURL:      TermsURL,
		ServiceScopes: map[string][]string{id + "/dns": {"dns:write", "zones:read"}},
		DefaultScopes: []string{"zones:read"},
		RedirectURIs:  map[string][]string{OrchestratorIssuer: {CallbackURL}},
		Logger:        slog.New(slog.DiscardHandler),
		// The oauth2 client waits one interval before its first poll.
		DeviceInterval: time.Second,
	}
	if cfg.Authorize != nil {
		opts.Authorizer = cfg.Authorize
	}
	if cfg.Clock != nil {
		opts.Clock = cfg.Clock.Now
	}
	opts.EmailLinkPolicy = cfg.Policy
	p.Provisioner, err = provision.NewProvisioner(v, p.Accounts, p.Tokens, opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	oauthHandler := p.Provisioner.Handler()
	mux.Handle("/", oauthHandler)
	mux.Handle(provision.PathRevocationEvent, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.RevocationCalls.Add(1)
		if p.RevocationFailures.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		oauthHandler.ServeHTTP(w, r)
	}))
	mux.Handle("GET /v1/whoami", p.Provisioner.Middleware("zones:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

// PostToken posts form to the token endpoint and decodes the JSON answer.
func PostToken(t testing.TB, p *Provider, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := p.Server.Client().PostForm(p.Server.URL+provision.PathToken, form)
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

// JWTBearer is the token request form of the JWT bearer grant.
func JWTBearer(assertion string) url.Values {
	return url.Values{"grant_type": {authz.GrantTypeJWTBearer}, "assertion": {assertion}}
}

// WantErr fails t unless err carries sentinel's code and status.
func WantErr(t testing.TB, err error, sentinel *authz.Error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("got error %v, want code %s", err, sentinel.Code)
	}
	if e := authz.AsError(err); e == nil || e.Status != sentinel.Status {
		t.Fatalf("error %v lacks status %d", err, sentinel.Status)
	}
}

package provision_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
)

// exampleSetup builds an orchestrator attester and a provider provisioner
// trusting it, as two separate services would.
func exampleSetup() (*authz.Attester, *provision.Provisioner) {
	key, err := authz.GenerateSigningKey("orch-2026", jose.EdDSA)
	if err != nil {
		log.Fatal(err)
	}
	attester, err := authz.NewAttester("https://orchestrator.example", key, nil)
	if err != nil {
		log.Fatal(err)
	}
	// Provider side: trust the orchestrator's published keys.
	verifier, err := authz.NewVerifier("acme",
		[]authz.TrustedIssuer{{Issuer: "https://orchestrator.example", Keys: attester.JWKS()}},
		authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		log.Fatal(err)
	}
	prov, err := provision.NewProvisioner(verifier, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(),
		&provision.ProvisionerOptions{
			Issuer:        "https://acme.example",
			TermsVersion:  "2026-04",
			TermsURL:      "https://acme.example/terms",
			ServiceScopes: map[string][]string{"acme/dns": {"dns:write", "zones:read"}},
			Logger:        slog.New(slog.DiscardHandler),
		})
	if err != nil {
		log.Fatal(err)
	}
	return attester, prov
}

// exampleAttestation is what the orchestrator sends for a new user who
// accepted Acme's terms.
func exampleAttestation(attester *authz.Attester) string {
	ctx := context.Background()
	consent, err := attester.SignConsent(ctx, authz.ConsentReceipt{
		Subject: "user-42", Email: "ada@example.com", Provider: "acme",
		TermsURL: "https://acme.example/terms", TermsVersion: "2026-04",
		AcceptedAt: time.Now().Add(-time.Minute), Human: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := attester.Attest(ctx, authz.AttestRequest{
		Audience: "acme", Subject: "user-42", Email: "ada@example.com", EmailVerified: true,
		Project: "proj_site", Service: "acme/dns", Consent: consent,
	})
	if err != nil {
		log.Fatal(err)
	}
	return tok
}

// A provider mounts the provisioner's endpoints on its own mux next to its
// API; the orchestrator provisions an account with one token request.
func ExampleProvisioner() {
	attester, prov := exampleSetup()

	mux := http.NewServeMux()
	mux.Handle("/", prov.Handler()) // token, device, revocation, well-known
	mux.Handle("GET /v1/zones", prov.Middleware("zones:read")(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "[]") })))

	form := url.Values{"grant_type": {authz.GrantTypeJWTBearer}, "assertion": {exampleAttestation(attester)}}
	req := httptest.NewRequest(http.MethodPost, "https://acme.example"+provision.PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)

	var tr authz.TokenResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Code, tr.TokenType, tr.LinkAction, tr.Scope)

	req = httptest.NewRequest(http.MethodGet, "https://acme.example/v1/zones", nil)
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())
	// Output:
	// 200 Bearer created dns:write zones:read
	// 200 []
}

// The middleware admits live tokens with the required scopes and hands the
// handler the caller's identity; everything else gets a Bearer challenge
// pointing at the RFC 9728 metadata.
func ExampleProvisioner_Middleware() {
	attester, prov := exampleSetup()
	tr, err := prov.Exchange(context.Background(), url.Values{
		"grant_type": {authz.GrantTypeJWTBearer}, "assertion": {exampleAttestation(attester)},
	})
	if err != nil {
		log.Fatal(err)
	}

	api := prov.Middleware("dns:write")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := provision.IdentityFromContext(r.Context())
		fmt.Fprintf(w, "hello %s from %s, project %s", id.User.Subject, id.User.Issuer, id.Project)
	}))

	for _, auth := range []string{"Bearer " + tr.AccessToken, "Bearer apt_forged"} {
		req := httptest.NewRequest(http.MethodPost, "https://acme.example/v1/records", nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			fmt.Println(rec.Code, rec.Body.String())
			continue
		}
		fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// Output:
	// 200 hello user-42 from https://orchestrator.example, project proj_site
	// 401 Bearer error="invalid_token", error_description="token is not valid", resource_metadata="https://acme.example/.well-known/oauth-protected-resource/v1/records"
}

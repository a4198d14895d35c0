package agentprov_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov"
	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/catalogschema"
)

func TestProviderMountServesEveryPieceUnderPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /existing", func(w http.ResponseWriter, r *http.Request) {})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base := srv.URL + "/p/acme"

	key, _ := authz.GenerateSigningKey("orch", jose.EdDSA)
	att, _ := authz.NewAttester("https://orch.example", key, nil)
	ver, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: "https://orch.example", Keys: att.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	prov, err := provision.NewProvisioner(ver, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(),
		&provision.ProvisionerOptions{Issuer: base, TermsVersion: "1", TermsURL: srv.URL + "/terms", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cat := &catalogschema.Catalog{ProtocolVersion: catalogschema.ProtocolVersion, ProviderID: "acme", ProviderName: "Acme",
		UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Services: []*catalogschema.Service{{ServiceID: "dns", Description: "DNS.", Kind: catalogschema.KindDeployable,
			Scope: catalogschema.ScopeProject, Categories: []string{"dns"}, Pricing: catalogschema.Pricing{Type: catalogschema.PricingFree}}}}
	device := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	p, err := agentprov.NewProvider(base, catalogschema.ProviderMetadata{ProviderID: "acme", Name: "Acme",
		TermsOfService: catalogschema.Terms{URL: srv.URL + "/terms", Version: "1"},
		AuthModes:      []catalogschema.AuthMode{catalogschema.AuthAttestation}}, cat, prov, &agentprov.ProviderOptions{DevicePage: device})
	if err != nil {
		t.Fatal(err)
	}
	p.Mount(mux)

	for path, want := range map[string]int{
		"/p/acme/.well-known/agent-provisioning":         200,
		"/p/acme/catalog":                                200,
		"/p/acme/.well-known/jwks.json":                  200,
		"/.well-known/oauth-authorization-server/p/acme": 200,
		"/p/acme/device":                                 299,
		"/existing":                                      200,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Get(prov.ResourceMetadataURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET resource metadata: %d", resp.StatusCode)
	}
	// The token endpoint answers (a bad request), not 404.
	resp, err = http.Post(base+provision.PathToken, "application/x-www-form-urlencoded", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 404 || resp.StatusCode == 405 {
		t.Errorf("POST token endpoint: %d", resp.StatusCode)
	}
	m := p.Metadata()
	if m.CatalogURI != base+"/catalog" || m.AccountProvisioningEndpoint != base+provision.PathToken || m.RevocationEndpoint != base+provision.PathRevocationEvent {
		t.Errorf("endpoints not filled from the base URL: %+v", m)
	}
}

func TestNewProviderRefusesIssuerOtherThanBase(t *testing.T) {
	key, _ := authz.GenerateSigningKey("orch", jose.EdDSA)
	att, _ := authz.NewAttester("https://orch.example", key, nil)
	ver, _ := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: "https://orch.example", Keys: att.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	prov, err := provision.NewProvisioner(ver, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(),
		&provision.ProvisionerOptions{Issuer: "https://acme.example", TermsVersion: "1", TermsURL: "https://acme.example/terms"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agentprov.NewProvider("https://acme.example/other", catalogschema.ProviderMetadata{}, &catalogschema.Catalog{}, prov, nil); err == nil {
		t.Error("mismatched issuer accepted")
	}
}

package embed_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov"
	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/discovery"
)

// catalog is the provider's one service.
func catalog() *catalogschema.Catalog {
	return &catalogschema.Catalog{
		ProtocolVersion: catalogschema.ProtocolVersion, ProviderID: "acme", ProviderName: "Acme Cloud",
		UpdatedAt: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
		Services: []*catalogschema.Service{{
			ServiceID: "dns", Description: "DNS zones.", Kind: catalogschema.KindDeployable,
			Scope: catalogschema.ScopeProject, Categories: []string{"dns"},
			Pricing: catalogschema.Pricing{Type: catalogschema.PricingFree},
		}},
	}
}

// mountProvider is the user code of the provider role: the service's
// existing mux gains the protocol under /agentprov.
func mountProvider(mux *http.ServeMux, origin string, orchestrator *jose.JSONWebKeySet) error {
	base := origin + "/agentprov"
	verifier, err := authz.NewVerifier("acme",
		[]authz.TrustedIssuer{{Issuer: "https://orchestrator.example", Keys: orchestrator}},
		authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		return err
	}
	prov, err := provision.NewProvisioner(verifier, provision.NewMemoryAccountStore(), provision.NewMemoryTokenStore(),
		&provision.ProvisionerOptions{Issuer: base, TermsVersion: "2026-04", TermsURL: origin + "/terms",
			ServiceScopes: map[string][]string{"acme/dns": {"dns:write"}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	p, err := agentprov.NewProvider(base, catalogschema.ProviderMetadata{
		ProviderID: "acme", Name: "Acme Cloud",
		TermsOfService: catalogschema.Terms{URL: origin + "/terms", Version: "2026-04"},
		AuthModes:      []catalogschema.AuthMode{catalogschema.AuthAttestation},
	}, catalog(), prov, nil)
	if err != nil {
		return err
	}
	p.Mount(mux)
	return nil
}

// An existing service keeps its routes and serves the provider role under a
// prefix; an orchestrator trusting its base URL discovers its catalog.
func Example() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// The orchestrator's attestation key, which the provider trusts.
	key, _ := authz.GenerateSigningKey("orch-2026", jose.EdDSA)
	attester, _ := authz.NewAttester("https://orchestrator.example", key, nil)
	if err := mountProvider(mux, srv.URL, attester.JWKS()); err != nil {
		panic(err)
	}

	// Orchestrator side: trust the provider's base URL, aggregate, search.
	agg, err := discovery.NewAggregator([]discovery.TrustedProvider{
		{ID: "acme", BaseURL: srv.URL + "/agentprov"},
	}, &discovery.AggregatorOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	rep := agg.Refresh(context.Background())
	fmt.Println("acme:", rep.Result("acme").Status)
	for _, e := range agg.Search(discovery.Filter{Category: "dns"}) {
		fmt.Println(e.Ref, e.Service.Kind)
	}
	resp, _ := http.Get(srv.URL + "/healthz")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("existing route:", string(body))
	// Output:
	// acme: updated
	// acme/dns deployable
	// existing route: ok
}

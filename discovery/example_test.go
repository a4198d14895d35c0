package discovery_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/discovery"
)

// exampleProvider starts a provider serving one domain service, signed with
// an Ed25519 key, and returns its base URL and public keys.
func exampleProvider(price int64) (*httptest.Server, *discovery.Handler, *jose.JSONWebKeySet) {
	seed := sha256.Sum256([]byte("example key"))
	key := ed25519.NewKeyFromSeed(seed[:])
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	base := srv.URL
	meta := &catalogschema.ProviderMetadata{
		ProtocolVersion:             catalogschema.ProtocolVersion,
		ProviderID:                  "registrar",
		Name:                        "Example Registrar",
		TermsOfService:              catalogschema.Terms{URL: base + "/terms", Version: "2026-01"},
		JWKSURI:                     base + "/.well-known/jwks.json",
		CatalogURI:                  base + "/catalog",
		CatalogSigning:              catalogschema.SigningJWS,
		AccountProvisioningEndpoint: base + "/accounts",
		AuthModes:                   []catalogschema.AuthMode{catalogschema.AuthAttestation},
		PaymentMethods:              []string{},
	}
	h, err := discovery.NewHandler(meta, exampleCatalog(price), &discovery.HandlerOptions{
		SigningKey: &jose.SigningKey{Algorithm: jose.EdDSA, Key: key},
		KeyID:      "registrar-2026",
	})
	if err != nil {
		panic(err)
	}
	srv.Config.Handler = h
	keys := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "registrar-2026", Algorithm: "EdDSA", Use: "sig"}}}
	return srv, h, keys
}

func exampleCatalog(price int64) *catalogschema.Catalog {
	return &catalogschema.Catalog{
		ProtocolVersion: catalogschema.ProtocolVersion,
		ProviderID:      "registrar",
		ProviderName:    "Example Registrar",
		UpdatedAt:       time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
		Services: []*catalogschema.Service{{
			ServiceID:   "registrar:domain",
			Description: "One domain name, registered for a year.",
			Kind:        catalogschema.KindDeployable,
			Scope:       catalogschema.ScopeProject,
			Categories:  []string{"domains"},
			Pricing:     catalogschema.Pricing{Type: catalogschema.PricingPaid},
			Prices:      []catalogschema.Price{{Amount: price, Currency: "USD", Basis: catalogschema.BasisOneTime}},
		}},
	}
}

// A provider serves its signed catalog; an orchestrator pins the provider's
// key, aggregates, and searches.
func Example() {
	srv, _, keys := exampleProvider(1299)
	defer srv.Close()

	agg, err := discovery.NewAggregator([]discovery.TrustedProvider{
		{ID: "registrar", BaseURL: srv.URL, Keys: keys, RequireSignature: true},
	}, nil)
	if err != nil {
		panic(err)
	}
	rep := agg.Refresh(context.Background())
	fmt.Println("registrar:", rep.Result("registrar").Status)
	for _, e := range agg.Search(discovery.Filter{Category: "domains"}) {
		p := e.Service.Prices[0]
		fmt.Printf("%s %s %d %s (%s)\n", e.Ref, e.Service.Kind, p.Amount, p.Currency, p.Basis)
	}
	// Output:
	// registrar: updated
	// registrar/registrar:domain deployable 1299 USD (one_time)
}

// Lookup parses the ref strictly and reports typed errors.
func ExampleAggregator_Lookup() {
	srv, _, keys := exampleProvider(1299)
	defer srv.Close()
	agg, _ := discovery.NewAggregator([]discovery.TrustedProvider{{ID: "registrar", BaseURL: srv.URL, Keys: keys}}, nil)
	agg.Refresh(context.Background())

	e, err := agg.Lookup("registrar/registrar:domain")
	fmt.Println(e.Ref, err)
	_, err = agg.Lookup("Registrar/registrar:domain")
	fmt.Println(errors.Is(err, catalogschema.ErrInvalidRef))
	_, err = agg.Lookup("registrar/registrar:tld")
	fmt.Println(errors.Is(err, discovery.ErrUnknownService))
	_, err = agg.Lookup("cloud/vm")
	fmt.Println(errors.Is(err, discovery.ErrUnknownProvider))
	// Output:
	// registrar/registrar:domain <nil>
	// true
	// true
	// true
}

// A price rise past the threshold is quarantined until an operator accepts it.
func ExampleAggregator_Accept() {
	srv, h, keys := exampleProvider(1000)
	defer srv.Close()
	agg, _ := discovery.NewAggregator([]discovery.TrustedProvider{{ID: "registrar", BaseURL: srv.URL, Keys: keys}}, nil)
	ctx := context.Background()
	agg.Refresh(ctx)

	_ = h.SetCatalog(exampleCatalog(1500)) // +50 %
	r := agg.Refresh(ctx).Result("registrar")
	fmt.Println(r.Status, errors.Is(r.Err, discovery.ErrQuarantined), r.Drift.MaxIncreaseBP(), "bp")
	e, _ := agg.Lookup("registrar/registrar:domain")
	fmt.Println("served:", e.Service.Prices[0].Amount)

	_ = agg.Accept(ctx, "registrar")
	e, _ = agg.Lookup("registrar/registrar:domain")
	fmt.Println("after accept:", e.Service.Prices[0].Amount)
	// Output:
	// quarantined true 5000 bp
	// served: 1000
	// after accept: 1500
}

// The provider side as deployed: a signed catalog behind TLS.
func ExampleNewHandler() {
	_, ed25519Key, _ := ed25519.GenerateKey(nil)
	meta, cat := &catalogschema.ProviderMetadata{ /* … */ }, exampleCatalog(1299)
	h, err := discovery.NewHandler(meta, cat, &discovery.HandlerOptions{
		SigningKey: &jose.SigningKey{Algorithm: jose.EdDSA, Key: ed25519Key},
		KeyID:      "registrar-2026",
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServeTLS(":443", "cert.pem", "key.pem", h))
}

// The orchestrator side as deployed.
func ExampleNewAggregator() {
	ctx := context.Background()
	var pinnedKeys *jose.JSONWebKeySet // the registrar's public keys, from configuration
	agg, err := discovery.NewAggregator([]discovery.TrustedProvider{
		{ID: "registrar", BaseURL: "https://registrar.example", Keys: pinnedKeys, RequireSignature: true},
		{ID: "cloud", BaseURL: "https://cloud.example"},
	}, &discovery.AggregatorOptions{Timeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	report := agg.Refresh(ctx)
	for _, r := range report.Results {
		if r.Err != nil {
			log.Printf("%s: %s: %v", r.ID, r.Status, r.Err) // *discovery.FetchError
		}
	}
	entry, err := agg.Lookup("registrar/registrar:domain")
	if err != nil {
		log.Fatal(err) // *catalogschema.RefError, ErrUnknownProvider, ErrUnknownService…
	}
	fmt.Println(entry.Ref, entry.Service.Prices[0].Amount, entry.Stale)
}

// After a Refresh, the provider's metadata (endpoints, auth modes, signing
// inputs) comes from the result or the Aggregator, with no second fetch.
func ExampleAggregator_Metadata() {
	srv, _, keys := exampleProvider(1299)
	defer srv.Close()
	agg, _ := discovery.NewAggregator([]discovery.TrustedProvider{{ID: "registrar", BaseURL: srv.URL, Keys: keys}}, nil)
	rep := agg.Refresh(context.Background())

	m := rep.Result("registrar").Snapshot.Metadata // the same as agg.Metadata("registrar")
	fmt.Println("provisioning:", strings.TrimPrefix(m.AccountProvisioningEndpoint, srv.URL))
	fmt.Println("auth modes:", m.AuthModes, "signing:", m.CatalogSigning)
	pc, _ := agg.Provider("registrar")
	fmt.Println("verified with:", pc.Snapshot.Signature.KeyID, "of", len(pc.Keys.Keys), "trusted key(s)")
	e, _ := agg.Lookup("registrar/registrar:domain")
	fmt.Println("entry metadata:", e.Metadata == m)
	// Output:
	// provisioning: /accounts
	// auth modes: [attestation] signing: jws
	// verified with: registrar-2026 of 1 trusted key(s)
	// entry metadata: true
}

// A CLI runs one command per process: it saves the Aggregator's State after
// a command and restores it before the next, so a quarantined price rise
// stays quarantined instead of being taken as a first contact.
func ExampleAggregator_State() {
	srv, h, keys := exampleProvider(1000)
	defer srv.Close()
	trust := []discovery.TrustedProvider{{ID: "registrar", BaseURL: srv.URL, Keys: keys}}
	ctx := context.Background()

	// Command 1.
	agg, _ := discovery.NewAggregator(trust, nil)
	agg.Refresh(ctx)
	_ = h.SetCatalog(exampleCatalog(100000)) // ×100
	fmt.Println("command 1:", agg.Refresh(ctx).Result("registrar").Status)
	st, _ := agg.State()
	saved, _ := json.Marshal(st) // into the CLI's state file

	// Command 2, a new process.
	var restored discovery.State
	_ = json.Unmarshal(saved, &restored)
	agg2, _ := discovery.NewAggregator(trust, nil)
	if err := agg2.Restore(&restored); err != nil {
		panic(err)
	}
	r := agg2.Refresh(ctx).Result("registrar")
	e, _ := agg2.Lookup("registrar/registrar:domain")
	fmt.Println("command 2:", r.Status, r.Code, "serving", e.Service.Prices[0].Amount)
	// Output:
	// command 1: quarantined
	// command 2: quarantined quarantined serving 1000
}

// FetchMetadata is the safe first contact with a provider the user names,
// e.g. "init --provider URL": same checks as Refresh, typed errors.
func ExampleFetchMetadata() {
	srv, _, _ := exampleProvider(1299)
	defer srv.Close()
	ctx := context.Background()

	m, err := discovery.FetchMetadata(ctx, nil, srv.URL, nil)
	fmt.Println(m.ProviderID, m.Name, err)

	_, err = discovery.FetchMetadata(ctx, nil, "http://registrar.example", nil)
	var fe *discovery.FetchError
	fmt.Println(errors.As(err, &fe), fe.Code())
	// Output:
	// registrar Example Registrar <nil>
	// true insecure_url
}

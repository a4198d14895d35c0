// Command quickstart runs the agent provisioning protocol end to end in one
// process: it starts two providers on loopback, aggregates their catalogs as
// an orchestrator would, and shows what an agent sees.
//
//	go run ./examples/quickstart          # readable output
//	go run ./examples/quickstart -json    # machine output
//
// Each stage is a step function over shared state, so later stages
// (authorization, payment) are added by appending to steps.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/discovery"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// state is what the steps share.
type state struct {
	out      io.Writer
	json     bool
	agg      *discovery.Aggregator
	trust    []discovery.TrustedProvider
	report   output
	shutdown []func()
}

// output is the -json document; each step fills its part.
type output struct {
	Providers []providerOut `json:"providers"`
	Search    *searchOut    `json:"search,omitempty"`
	Lookup    *serviceOut   `json:"lookup,omitempty"`
}

type providerOut struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	Signed   bool         `json:"signed"`
	KeyID    string       `json:"kid,omitempty"`
	Stale    bool         `json:"stale"`
	Services []serviceOut `json:"services"`
}

type serviceOut struct {
	Ref    string                `json:"ref"`
	Kind   catalogschema.Kind    `json:"kind"`
	Prices []catalogschema.Price `json:"prices"`
	// Price is the human rendering; the amounts above are authoritative.
	Price string `json:"price"`
}

type searchOut struct {
	Category string           `json:"category"`
	MaxPrice *discovery.Money `json:"max_price"`
	Matches  []string         `json:"matches"`
}

type step struct {
	name string
	fn   func(ctx context.Context, s *state) error
}

// steps run in order. Later versions of this quickstart append
// authorization and payment here.
var steps = []step{
	{"start providers", startProviders},
	{"aggregate catalogs", aggregate},
	{"search", search},
	{"lookup", lookup},
}

func run(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(w)
	asJSON := fs.Bool("json", false, "print machine-readable JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := &state{out: w, json: *asJSON}
	defer func() {
		for _, f := range s.shutdown {
			f()
		}
	}()
	for _, st := range steps {
		if err := st.fn(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	if s.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s.report)
	}
	return nil
}

func (s *state) printf(format string, a ...any) {
	if !s.json {
		fmt.Fprintf(s.out, format, a...)
	}
}

// --- providers --------------------------------------------------------------

// serve starts h on a loopback port and returns its base URL.
func (s *state) serve(h func(base string) (http.Handler, error)) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	base := "http://" + ln.Addr().String()
	handler, err := h(base)
	if err != nil {
		ln.Close()
		return "", err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.shutdown = append(s.shutdown, func() { _ = srv.Close() })
	return base, nil
}

func metadata(id, name, base string, signing catalogschema.CatalogSigning) *catalogschema.ProviderMetadata {
	return &catalogschema.ProviderMetadata{
		ProtocolVersion:             catalogschema.ProtocolVersion,
		ProviderID:                  id,
		Name:                        name,
		TermsOfService:              catalogschema.Terms{URL: base + "/terms", Version: "2026-01-01"},
		JWKSURI:                     base + "/.well-known/jwks.json",
		CatalogURI:                  base + "/catalog",
		CatalogSigning:              signing,
		AccountProvisioningEndpoint: base + "/accounts",
		PaymentEndpoint:             base + "/payments",
		AuthModes:                   []catalogschema.AuthMode{catalogschema.AuthAttestation},
		PaymentMethods:              []string{catalogschema.PaymentMethodAgentprovToken},
	}
}

var started = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// startProviders runs a registrar (signed catalog) and a compute provider
// (plain catalog).
func startProviders(_ context.Context, s *state) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	regBase, err := s.serve(func(base string) (http.Handler, error) {
		cat := &catalogschema.Catalog{
			ProtocolVersion: catalogschema.ProtocolVersion, ProviderID: "registrar", ProviderName: "Registrar",
			UpdatedAt: started,
			Services: []*catalogschema.Service{{
				ServiceID: "registrar:domain", Description: "Register a domain name for one year.",
				Kind: catalogschema.KindDeployable, Scope: catalogschema.ScopeProject, Categories: []string{"domains"},
				Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid},
				Prices:  []catalogschema.Price{{Amount: 1299, Currency: "USD", Basis: catalogschema.BasisOneTime}},
			}},
		}
		return discovery.NewHandler(metadata("registrar", "Registrar", base, catalogschema.SigningJWS), cat,
			&discovery.HandlerOptions{SigningKey: &jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, KeyID: "registrar-1"})
	})
	if err != nil {
		return fmt.Errorf("registrar: %w", err)
	}
	cloudBase, err := s.serve(func(base string) (http.Handler, error) {
		cat := &catalogschema.Catalog{
			ProtocolVersion: catalogschema.ProtocolVersion, ProviderID: "cloud", ProviderName: "Cloud",
			UpdatedAt: started,
			Services: []*catalogschema.Service{
				{
					ServiceID: "compute:small", Description: "A small always-on virtual machine.",
					Kind: catalogschema.KindPlan, Scope: catalogschema.ScopeAccount, Categories: []string{"compute"},
					Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid},
					Prices:  []catalogschema.Price{{Amount: 700, Currency: "USD", Basis: catalogschema.BasisMonthly}},
				},
				{
					ServiceID: "api:inference", Description: "Metered inference API.",
					Kind: catalogschema.KindDeployable, Scope: catalogschema.ScopeProject, Categories: []string{"ai", "compute"},
					Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid},
					Prices: []catalogschema.Price{{Amount: 50, Currency: "USD", Basis: catalogschema.BasisMetered,
						Unit: "request", PerUnits: 1000}},
				},
			},
		}
		return discovery.NewHandler(metadata("cloud", "Cloud", base, catalogschema.SigningNone), cat, nil)
	})
	if err != nil {
		return fmt.Errorf("cloud: %w", err)
	}
	s.trust = []discovery.TrustedProvider{
		{ID: "registrar", BaseURL: regBase, RequireSignature: true, Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: key.Public(), KeyID: "registrar-1", Algorithm: string(jose.EdDSA), Use: "sig"}}}},
		{ID: "cloud", BaseURL: cloudBase},
	}
	return nil
}

// --- orchestrator -------------------------------------------------------------

func aggregate(ctx context.Context, s *state) error {
	agg, err := discovery.NewAggregator(s.trust, &discovery.AggregatorOptions{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	s.agg = agg
	rep := agg.Refresh(ctx)
	for _, r := range rep.Results {
		if r.Err != nil {
			return r.Err
		}
	}
	s.printf("Aggregated catalog\n")
	tw := tabwriter.NewWriter(s.out, 2, 8, 2, ' ', 0)
	if !s.json {
		fmt.Fprintln(tw, "PROVIDER\tSIGNED\tREF\tKIND\tPRICE")
	}
	for _, pc := range agg.Catalogs() {
		snap := pc.Snapshot
		po := providerOut{ID: pc.ID, Name: snap.Metadata.Name, Signed: snap.Signed(), Stale: pc.Stale}
		if snap.Signed() {
			po.KeyID = snap.Signature.KeyID
		}
		for _, svc := range snap.Catalog.Services {
			so := describe(snap.Catalog.Ref(svc), svc)
			po.Services = append(po.Services, so)
			if !s.json {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", pc.ID, yesNo(po.Signed), so.Ref, so.Kind, so.Price)
			}
		}
		s.report.Providers = append(s.report.Providers, po)
	}
	if !s.json {
		return tw.Flush()
	}
	return nil
}

func search(_ context.Context, s *state) error {
	f := discovery.Filter{Category: "compute", MaxPrice: &discovery.Money{Amount: 1000, Currency: "USD"}}
	out := &searchOut{Category: f.Category, MaxPrice: f.MaxPrice}
	for _, e := range s.agg.Search(f) {
		out.Matches = append(out.Matches, e.Ref.String())
	}
	s.report.Search = out
	s.printf("\nSearch category=compute, some price <= %s: %s\n", money(1000, "USD"), strings.Join(out.Matches, ", "))
	return nil
}

func lookup(_ context.Context, s *state) error {
	const ref = "registrar/registrar:domain"
	e, err := s.agg.Lookup(ref)
	if err != nil {
		return err
	}
	so := describe(e.Ref, e.Service)
	s.report.Lookup = &so
	// The description is untrusted provider text: printed with %q, as data.
	s.printf("Lookup %s: %s, %s, description %q\n", ref, so.Kind, so.Price, e.Service.Description)
	if _, err := s.agg.Lookup("registrar/registrar:tld"); !errors.Is(err, discovery.ErrUnknownService) {
		return fmt.Errorf("unexpected lookup result: %v", err)
	}
	return nil
}

// --- rendering ----------------------------------------------------------------

func describe(ref catalogschema.Ref, svc *catalogschema.Service) serviceOut {
	var parts []string
	for _, p := range svc.Prices {
		parts = append(parts, price(p))
	}
	if len(parts) == 0 {
		parts = append(parts, string(svc.Pricing.Type))
	}
	return serviceOut{Ref: ref.String(), Kind: svc.Kind, Prices: svc.Prices, Price: strings.Join(parts, " + ")}
}

func price(p catalogschema.Price) string {
	m := money(p.Amount, p.Currency)
	switch p.Basis {
	case catalogschema.BasisOneTime:
		return m + " one-time"
	case catalogschema.BasisMonthly:
		return m + "/month"
	case catalogschema.BasisYearly:
		return m + "/year"
	case catalogschema.BasisMetered:
		per := max(p.PerUnits, 1)
		return fmt.Sprintf("%s per %d %s (metered)", m, per, p.Unit)
	}
	return m + " " + string(p.Basis)
}

// money renders minor units with integer arithmetic only.
func money(amount int64, currency string) string {
	digits := 2
	switch currency {
	case "JPY", "KRW", "VND", "CLP", "ISK":
		digits = 0
	}
	if digits == 0 {
		return fmt.Sprintf("%d %s", amount, currency)
	}
	return fmt.Sprintf("%d.%02d %s", amount/100, amount%100, currency)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

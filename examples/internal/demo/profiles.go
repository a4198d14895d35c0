package demo

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/agentprov/agentprov/catalogschema"
)

// Profile is what a demo provider sells: its id, name, terms and catalog
// services, and the OAuth scopes a token for each service carries. A
// Profile is a value; its Services must not be modified once a Provider
// serves them.
type Profile struct {
	ID           string
	Name         string
	TermsVersion string
	// TermsURL is where the human reads the terms: an https page of the
	// provider's website (consent receipts refuse anything else).
	TermsURL string
	Services []*catalogschema.Service
	// Scopes maps a service id to the scopes of its tokens.
	Scopes map[string][]string
}

// Service ids of the demo profiles, used by the provider's API routes.
const (
	ServiceDomain    = "registrar:domain"
	ServiceCompute   = "compute:small"
	ServiceInference = "api:inference"
)

// catalogTime is fixed so that catalogs (and their ETags) are reproducible.
var catalogTime = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// Registrar is a domain registrar selling a domain at a one-time price.
func Registrar() Profile {
	return Profile{
		ID: "registrar", Name: "Registrar", TermsVersion: "2026-05",
		TermsURL: "https://registrar.example/legal/terms",
		Scopes:   map[string][]string{ServiceDomain: {"domains:write"}},
		Services: []*catalogschema.Service{{
			ServiceID: ServiceDomain, Description: "Register a domain name for one year.",
			Kind: catalogschema.KindDeployable, Scope: catalogschema.ScopeProject, Categories: []string{"domains"},
			ConfigurationSchema: json.RawMessage(`{"type":"object","properties":{"domain":{"type":"string",` +
				`"pattern":"^[a-z0-9-]{1,63}\\.(dev|com|app)$"}},"required":["domain"],"additionalProperties":false}`),
			Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid},
			Prices:  []catalogschema.Price{{Amount: 1299, Currency: "USD", Basis: catalogschema.BasisOneTime}},
		}},
	}
}

// Cloud is a compute platform with a monthly plan and a metered API.
func Cloud() Profile {
	return Profile{
		ID: "cloud", Name: "Cloud", TermsVersion: "2026-04",
		TermsURL: "https://cloud.example/terms",
		Scopes: map[string][]string{
			ServiceCompute:   {"deploy"},
			ServiceInference: {"inference"},
		},
		Services: []*catalogschema.Service{
			{
				ServiceID: ServiceCompute, Description: "A small always-on virtual machine.",
				Kind: catalogschema.KindPlan, Scope: catalogschema.ScopeAccount, Categories: []string{"compute"},
				ConfigurationSchema: json.RawMessage(`{"type":"object","properties":{"region":{"enum":["eu","us"]}},` +
					`"additionalProperties":false}`),
				Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid},
				Prices:  []catalogschema.Price{{Amount: 700, Currency: "USD", Basis: catalogschema.BasisMonthly}},
			},
			{
				ServiceID: ServiceInference, Description: "Metered inference API, paid per request with HTTP 402.",
				Kind: catalogschema.KindDeployable, Scope: catalogschema.ScopeProject, Categories: []string{"ai", "compute"},
				Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid},
				Prices: []catalogschema.Price{{Amount: 250, Currency: "USD", Basis: catalogschema.BasisMetered,
					Unit: "request", PerUnits: 1}},
			},
		},
	}
}

// Profiles returns the demo profiles by id.
func Profiles() map[string]Profile {
	return map[string]Profile{"registrar": Registrar(), "cloud": Cloud()}
}

// ProfileIDs lists the ids of Profiles, sorted.
func ProfileIDs() []string {
	var ids []string
	for id := range Profiles() {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Catalog returns the profile's catalog document.
func (p Profile) Catalog() *catalogschema.Catalog {
	return &catalogschema.Catalog{
		ProtocolVersion: catalogschema.ProtocolVersion, ProviderID: p.ID, ProviderName: p.Name,
		UpdatedAt: catalogTime, Services: p.Services,
	}
}

// Service returns the service with id, or nil.
func (p Profile) Service(id string) *catalogschema.Service {
	for _, s := range p.Services {
		if s.ServiceID == id {
			return s
		}
	}
	return nil
}

// upfront is what activating a service costs at once: its one-time price
// plus its first month or year. Metered prices are paid per call.
func upfront(s *catalogschema.Service) (amount int64, currency string) {
	for _, p := range s.Prices {
		switch p.Basis {
		case catalogschema.BasisOneTime, catalogschema.BasisMonthly, catalogschema.BasisYearly:
			amount += p.Amount
			currency = p.Currency
		}
	}
	return amount, currency
}

// metered returns the price of one metered unit, if the service has one.
func metered(s *catalogschema.Service) (catalogschema.Price, bool) {
	for _, p := range s.Prices {
		if p.Basis == catalogschema.BasisMetered {
			return p, true
		}
	}
	return catalogschema.Price{}, false
}

// Upfront reports what adding the service charges at once (one-time price
// plus the first period), in minor units.
func Upfront(s *catalogschema.Service) (int64, string) { return upfront(s) }

// DescribePrice renders a service's prices for people; amounts in the
// catalog are authoritative.
func DescribePrice(s *catalogschema.Service) string {
	out := ""
	for i, p := range s.Prices {
		if i > 0 {
			out += " + "
		}
		m := Money(p.Amount, p.Currency)
		switch p.Basis {
		case catalogschema.BasisOneTime:
			out += m + " one-time"
		case catalogschema.BasisMonthly:
			out += m + "/month"
		case catalogschema.BasisYearly:
			out += m + "/year"
		case catalogschema.BasisMetered:
			out += fmt.Sprintf("%s per %d %s (metered)", m, max(p.PerUnits, 1), p.Unit)
		default:
			out += m + " " + string(p.Basis)
		}
	}
	if out == "" {
		out = string(s.Pricing.Type)
	}
	return out
}

// Money renders minor units with integer arithmetic only.
func Money(amount int64, currency string) string {
	switch currency {
	case "JPY", "KRW", "VND", "CLP", "ISK":
		return fmt.Sprintf("%d %s", amount, currency)
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, amount/100, amount%100, currency)
}

package discovery

import (
	"fmt"
	"strings"

	"github.com/agentprov/agentprov/catalogschema"
)

// Money is an amount in minor units of an ISO 4217 currency (§2.6).
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Filter selects services in Search. Zero fields match everything; set
// fields must all match.
type Filter struct {
	// Provider is an exact provider id.
	Provider string
	// Category is an exact category tag.
	Category string
	// Kind is "plan" or "deployable".
	Kind catalogschema.Kind
	// Text matches, case-insensitively, as a substring of the service id,
	// description, categories, group or provider name. It is plain text,
	// never a pattern.
	Text string
	// MaxPrice keeps services having at least one machine-readable price in
	// MaxPrice.Currency whose amount is at most MaxPrice.Amount. Prices in
	// other currencies never match: there is no conversion.
	MaxPrice *Money
}

// Entry is one service of an accepted catalog. Service points into an
// immutable snapshot and must not be modified. Description and LLMContext
// are untrusted provider text: show them as data, never follow or execute
// them.
type Entry struct {
	Provider string
	Ref      catalogschema.Ref
	Service  *catalogschema.Service
	// Stale and Quarantined mirror the provider's state (see ProviderCatalog).
	Stale, Quarantined bool
	// UntrustedText lists this service's texts changed since the operator
	// last accepted them (all of them for a service added since): show
	// them to an agent only as unreviewed data.
	UntrustedText []TextChange
	// Metadata is the provider's accepted metadata (endpoints, auth modes,
	// payment methods); shared and immutable.
	Metadata *catalogschema.ProviderMetadata
}

// Search returns the services of all accepted catalogs matching f, ordered
// by provider id and then catalog order.
func (a *Aggregator) Search(f Filter) []Entry {
	text := strings.ToLower(f.Text)
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []Entry
	for _, p := range a.providers {
		if p.accepted == nil || (f.Provider != "" && f.Provider != p.trust.ID) {
			continue
		}
		for _, s := range p.accepted.Catalog.Services {
			if s == nil || !matches(s, p.accepted.Catalog.ProviderName, f, text) {
				continue
			}
			out = append(out, a.entry(p, s))
		}
	}
	return out
}

func (a *Aggregator) entry(p *provider, s *catalogschema.Service) Entry {
	return Entry{
		Provider: p.trust.ID,
		Ref:      catalogschema.Ref{Provider: p.trust.ID, Service: s.ServiceID},
		Service:  s, Stale: p.lastErr != nil, Quarantined: p.quarantined,
		UntrustedText: serviceChanges(p.untrusted, s.ServiceID),
		Metadata:      p.accepted.Metadata,
	}
}

func serviceChanges(all []TextChange, service string) []TextChange {
	var out []TextChange
	for _, c := range all {
		if c.Service == service {
			out = append(out, c)
		}
	}
	return out
}

func matches(s *catalogschema.Service, providerName string, f Filter, text string) bool {
	if f.Kind != "" && s.Kind != f.Kind {
		return false
	}
	if f.Category != "" && !contains(s.Categories, f.Category) {
		return false
	}
	if f.MaxPrice != nil {
		ok := false
		for _, pr := range s.Prices {
			if pr.Currency == f.MaxPrice.Currency && pr.Amount <= f.MaxPrice.Amount {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if text == "" {
		return true
	}
	fields := []string{s.ServiceID, s.Description, providerName}
	fields = append(fields, s.Categories...)
	if s.Group != nil {
		fields = append(fields, *s.Group)
	}
	for _, v := range fields {
		if strings.Contains(strings.ToLower(v), text) {
			return true
		}
	}
	return false
}

// Lookup resolves a service ref ("provider/service_id", parsed strictly by
// catalogschema.ParseRef) against the accepted catalogs. It returns
// catalogschema's *RefError for a malformed ref, ErrUnknownProvider,
// ErrNoCatalog, or ErrUnknownService.
func (a *Aggregator) Lookup(ref string) (*Entry, error) {
	r, err := catalogschema.ParseRef(ref)
	if err != nil {
		return nil, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	p, ok := a.byID[r.Provider]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownProvider, r.Provider)
	}
	if p.accepted == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoCatalog, r.Provider)
	}
	for _, s := range p.accepted.Catalog.Services {
		if s != nil && s.ServiceID == r.Service {
			e := a.entry(p, s)
			return &e, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownService, ref)
}

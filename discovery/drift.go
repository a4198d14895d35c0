package discovery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"

	"github.com/agentprov/agentprov/catalogschema"
)

// DefaultMaxPriceIncreaseBP is the default quarantine threshold: a price
// rising by more than 20.00 % (2000 basis points) holds the catalog back.
const DefaultMaxPriceIncreaseBP = 2000

// Snapshot is one provider's accepted documents at a point in time. It is
// immutable once built: callers must not modify it or anything it points to,
// and may share it across goroutines.
type Snapshot struct {
	ProviderID string
	Metadata   *catalogschema.ProviderMetadata
	Catalog    *catalogschema.Catalog
	// Signature is nil for an unsigned catalog.
	Signature *SignatureInfo
	// ETag is the catalog's ETag as sent by the provider (may be empty).
	ETag string
}

// Signed reports whether the catalog arrived as a verified JWS.
func (s *Snapshot) Signed() bool { return s != nil && s.Signature != nil }

// Drift is the difference between two snapshots of one provider. Slices are
// sorted by service id so that reports are stable.
type Drift struct {
	Provider string `json:"provider"`
	// Added and Removed list service ids.
	Added        []string      `json:"added,omitempty"`
	Removed      []string      `json:"removed,omitempty"`
	PriceChanges []PriceChange `json:"price_changes,omitempty"`
	// PricingText lists changes to the human-readable pricing description
	// (pricing type, freeform and description texts). They are
	// informational: they never quarantine, since only the machine-readable
	// prices bind what is charged.
	PricingText []PricingTextChange `json:"pricing_text,omitempty"`
	// Text lists changes to the other text an agent reads: a service's
	// description, llm_context, provider_name, group, categories, price
	// descriptions, configuration schemas (their titles and descriptions
	// are prose too) and unknown members, and the provider's names. Text
	// never quarantines, but the Aggregator marks it untrusted until
	// Accept (ProviderCatalog.UntrustedText, Entry.UntrustedText): it is a
	// prompt-injection channel.
	Text []TextChange `json:"text,omitempty"`
	// Terms is non-nil when the terms-of-service URL or version changed.
	Terms *TermsChange `json:"terms,omitempty"`
	// Signature is non-nil when signing changed: signed↔unsigned, kid or
	// algorithm.
	Signature *SignatureChange `json:"signature,omitempty"`
	// SignatureFailure is set by the Aggregator when a provider that was
	// signed served a catalog that failed verification.
	SignatureFailure error `json:"-"`
}

// UnboundedAmount is the upper bound of a price that has none: a metered
// price without max_amount.
const UnboundedAmount = math.MaxInt64

// PriceChange is one machine-readable price that changed, in its amount or
// its upper bound. Prices are matched by (currency, basis, unit, per_units);
// a price present on one side only has Old, New, OldMax or NewMax nil.
type PriceChange struct {
	Service  string                   `json:"service"`
	Currency string                   `json:"currency"`
	Basis    catalogschema.PriceBasis `json:"basis"`
	Unit     string                   `json:"unit,omitempty"`
	PerUnits int64                    `json:"per_units"`
	Old      *int64                   `json:"old_amount"` // minor units
	New      *int64                   `json:"new_amount"`
	// ChangeBP is (new-old)/old in basis points (1 % = 100), rounded towards
	// zero and clamped to the int64 range. A price appearing on an existing
	// service (Old nil or zero, New positive) counts as math.MaxInt64.
	ChangeBP int64 `json:"change_bp"`
	// OldMax and NewMax are the upper bounds: the sum of max_amount, where
	// a price without one counts as its amount, or as UnboundedAmount when
	// metered. MaxChangeBP is their change computed like ChangeBP; a bound
	// becoming unbounded counts as math.MaxInt64.
	OldMax      *int64 `json:"old_max_amount"`
	NewMax      *int64 `json:"new_max_amount"`
	MaxChangeBP int64  `json:"max_change_bp"`
}

// PricingTextChange is one changed text of a service's human-readable
// pricing description. Field names the member, e.g. "type",
// "paid.freeform", "paid_pricing[1].description" or
// "component.options[0].paid.freeform"; Old or New is empty when the member
// is absent on that side.
type PricingTextChange struct {
	Service string `json:"service"`
	Field   string `json:"field"`
	Old     string `json:"old,omitempty"`
	New     string `json:"new,omitempty"`
}

// TextChange is one changed text an agent reads. Service is "" for a
// provider-level text. Field names the member: "description",
// "llm_context", "provider_name", "group", "categories",
// "prices[0].description", "configuration_schema",
// "provider_configuration_schema", "extra.<member>" for an unknown member,
// "pricing.<field>" for a PricingTextChange, or at provider level
// "metadata.name" and "catalog.provider_name". Old or New is empty when the
// text is absent on that side (a service added since the accepted texts
// has every text New). Old and New are untrusted provider data.
type TextChange struct {
	Service string `json:"service,omitempty"`
	Field   string `json:"field"`
	Old     string `json:"old,omitempty"`
	New     string `json:"new,omitempty"`
}

// Percent returns ChangeBP as a percentage for display only; never use it for
// money arithmetic.
func (p PriceChange) Percent() float64 { return float64(p.ChangeBP) / 100 }

// TermsChange records changed terms of service.
type TermsChange struct {
	OldVersion string `json:"old_version"`
	NewVersion string `json:"new_version"`
	OldURL     string `json:"old_url"`
	NewURL     string `json:"new_url"`
}

// SignatureChange records a change in how the catalog is signed.
type SignatureChange struct {
	OldSigned    bool   `json:"old_signed"`
	NewSigned    bool   `json:"new_signed"`
	OldKeyID     string `json:"old_kid,omitempty"`
	NewKeyID     string `json:"new_kid,omitempty"`
	OldAlgorithm string `json:"old_alg,omitempty"`
	NewAlgorithm string `json:"new_alg,omitempty"`
}

// Downgrade reports a signed → unsigned change.
func (c *SignatureChange) Downgrade() bool { return c != nil && c.OldSigned && !c.NewSigned }

// Empty reports whether the drift records no change at all.
func (d *Drift) Empty() bool {
	return d == nil || (len(d.Added) == 0 && len(d.Removed) == 0 && len(d.PriceChanges) == 0 &&
		len(d.PricingText) == 0 && len(d.Text) == 0 && d.Terms == nil && d.Signature == nil && d.SignatureFailure == nil)
}

// MaxIncreaseBP returns the largest increase of a price or of its upper
// bound in basis points, or 0.
func (d *Drift) MaxIncreaseBP() int64 {
	var m int64
	if d == nil {
		return 0
	}
	for _, p := range d.PriceChanges {
		m = max(m, p.ChangeBP, p.MaxChangeBP)
	}
	return m
}

// DriftPolicy decides which drift quarantines a catalog.
type DriftPolicy struct {
	// MaxPriceIncreaseBP is the largest price increase accepted without an
	// operator, in basis points. Zero means DefaultMaxPriceIncreaseBP;
	// negative disables the price rule.
	MaxPriceIncreaseBP int64
	// AllowDowngrade accepts a signed → unsigned change without an operator.
	// Leave it false unless you know why.
	AllowDowngrade bool
}

// Reasons returns why d must be quarantined under p; empty means accept. A
// nil policy is the default policy.
func (p *DriftPolicy) Reasons(d *Drift) []string {
	if d == nil {
		return nil
	}
	th := int64(DefaultMaxPriceIncreaseBP)
	allowDowngrade := false
	if p != nil {
		if p.MaxPriceIncreaseBP != 0 {
			th = p.MaxPriceIncreaseBP
		}
		allowDowngrade = p.AllowDowngrade
	}
	var out []string
	if th >= 0 {
		for _, c := range d.PriceChanges {
			switch {
			case c.ChangeBP > th:
				out = append(out, fmt.Sprintf("price of %q (%s %s) rose by more than %d bp", c.Service, c.Currency, c.Basis, th))
			case c.MaxChangeBP > th:
				out = append(out, fmt.Sprintf("upper bound of the price of %q (%s %s) rose by more than %d bp", c.Service, c.Currency, c.Basis, th))
			}
		}
	}
	if d.Signature.Downgrade() && !allowDowngrade {
		out = append(out, "catalog no longer signed")
	}
	if d.SignatureFailure != nil {
		out = append(out, "signature verification failed for a previously signed catalog")
	}
	return out
}

// Diff compares two snapshots of the same provider. A nil old snapshot means
// everything in new is added (and nothing is a price change); a nil new
// snapshot means everything was removed.
func Diff(old, new *Snapshot) *Drift {
	d := &Drift{}
	switch {
	case new != nil:
		d.Provider = new.ProviderID
	case old != nil:
		d.Provider = old.ProviderID
	}
	oldSvc, newSvc := services(old), services(new)
	for id, ns := range newSvc {
		os, ok := oldSvc[id]
		if !ok {
			d.Added = append(d.Added, id)
			continue
		}
		d.PriceChanges = append(d.PriceChanges, diffPrices(id, os.Prices, ns.Prices)...)
		d.PricingText = append(d.PricingText, diffPricingText(id, os.Pricing, ns.Pricing)...)
	}
	for id := range oldSvc {
		if _, ok := newSvc[id]; !ok {
			d.Removed = append(d.Removed, id)
		}
	}
	slices.SortStableFunc(d.PricingText, func(a, b PricingTextChange) int { return strings.Compare(a.Service, b.Service) })
	slices.Sort(d.Added)
	slices.Sort(d.Removed)
	slices.SortStableFunc(d.PriceChanges, func(a, b PriceChange) int { return strings.Compare(a.Service, b.Service) })
	if old != nil && new != nil {
		d.Text = diffTexts(old, new, false)
		ot, nt := terms(old), terms(new)
		if ot != nt {
			d.Terms = &TermsChange{OldVersion: ot.Version, NewVersion: nt.Version, OldURL: ot.URL, NewURL: nt.URL}
		}
		os, ns := old.Signature, new.Signature
		var ok, nk, oa, na string
		if os != nil {
			ok, oa = os.KeyID, os.Algorithm
		}
		if ns != nil {
			nk, na = ns.KeyID, ns.Algorithm
		}
		if (os != nil) != (ns != nil) || ok != nk || oa != na {
			d.Signature = &SignatureChange{OldSigned: os != nil, NewSigned: ns != nil,
				OldKeyID: ok, NewKeyID: nk, OldAlgorithm: oa, NewAlgorithm: na}
		}
	}
	return d
}

func services(s *Snapshot) map[string]*catalogschema.Service {
	m := map[string]*catalogschema.Service{}
	if s == nil || s.Catalog == nil {
		return m
	}
	for _, svc := range s.Catalog.Services {
		if svc != nil {
			m[svc.ServiceID] = svc
		}
	}
	return m
}

func terms(s *Snapshot) catalogschema.Terms {
	if s.Metadata == nil {
		return catalogschema.Terms{}
	}
	return s.Metadata.TermsOfService
}

type priceKey struct {
	currency string
	basis    catalogschema.PriceBasis
	unit     string
	perUnits int64
}

func keyOf(p catalogschema.Price) priceKey {
	per := p.PerUnits
	if per == 0 {
		per = 1
	}
	return priceKey{p.Currency, p.Basis, p.Unit, per}
}

// upperBound is the most p can cost: max_amount, else the amount, except
// for a metered price, which is unbounded without max_amount.
func upperBound(p catalogschema.Price) int64 {
	switch {
	case p.MaxAmount != nil:
		return *p.MaxAmount
	case p.Basis == catalogschema.BasisMetered:
		return UnboundedAmount
	}
	return p.Amount
}

// diffPrices matches prices by key; prices of one service with the same key
// are summed (amounts and upper bounds), since the prices of a service add
// up.
func diffPrices(service string, old, new []catalogschema.Price) []PriceChange {
	type total struct{ amount, max int64 }
	sum := func(ps []catalogschema.Price) (map[priceKey]total, []priceKey) {
		m := map[priceKey]total{}
		var order []priceKey
		for _, p := range ps {
			k := keyOf(p)
			t, ok := m[k]
			if !ok {
				order = append(order, k)
			}
			m[k] = total{satAdd(t.amount, p.Amount), satAdd(t.max, upperBound(p))}
		}
		return m, order
	}
	om, oorder := sum(old)
	nm, norder := sum(new)
	var out []PriceChange
	mk := func(k priceKey) PriceChange {
		return PriceChange{Service: service, Currency: k.currency, Basis: k.basis, Unit: k.unit, PerUnits: k.perUnits}
	}
	for _, k := range norder {
		nv := nm[k]
		ov, had := om[k]
		if had && ov == nv {
			continue
		}
		c := mk(k)
		c.New, c.NewMax = ptr(nv.amount), ptr(nv.max)
		if had {
			c.Old, c.OldMax = ptr(ov.amount), ptr(ov.max)
		}
		c.ChangeBP = changeBP(ov.amount, nv.amount)
		c.MaxChangeBP = boundChangeBP(ov.max, nv.max)
		out = append(out, c)
	}
	for _, k := range oorder {
		if _, ok := nm[k]; !ok {
			c := mk(k)
			c.Old, c.OldMax = ptr(om[k].amount), ptr(om[k].max)
			c.ChangeBP = changeBP(om[k].amount, 0)
			c.MaxChangeBP = boundChangeBP(om[k].max, 0)
			out = append(out, c)
		}
	}
	return out
}

// boundChangeBP is changeBP for upper bounds, where UnboundedAmount is
// infinity rather than a number: becoming unbounded is an unbounded rise.
func boundChangeBP(from, to int64) int64 {
	switch {
	case from == to:
		return 0
	case to == UnboundedAmount:
		return math.MaxInt64
	case from == UnboundedAmount:
		return math.MinInt64
	}
	return changeBP(from, to)
}

// diffPricingText compares the texts of two human-readable pricing
// descriptions member by member.
func diffPricingText(service string, old, new catalogschema.Pricing) []PricingTextChange {
	om, nm := pricingTexts(old), pricingTexts(new)
	fields := make([]string, 0, len(om)+len(nm))
	for f := range om {
		fields = append(fields, f)
	}
	for f := range nm {
		if _, ok := om[f]; !ok {
			fields = append(fields, f)
		}
	}
	slices.Sort(fields)
	var out []PricingTextChange
	for _, f := range fields {
		if om[f] != nm[f] {
			out = append(out, PricingTextChange{Service: service, Field: f, Old: om[f], New: nm[f]})
		}
	}
	return out
}

// pricingTexts flattens the texts of p into member path → text; absent and
// empty texts are left out.
func pricingTexts(p catalogschema.Pricing) map[string]string {
	m := map[string]string{}
	put := func(path string, v *string) {
		if v != nil && *v != "" {
			m[path] = *v
		}
	}
	paid := func(prefix string, pp *catalogschema.PaidPricing) {
		if pp == nil {
			return
		}
		if pp.Type != "" {
			m[prefix+".type"] = pp.Type
		}
		put(prefix+".freeform", pp.Freeform)
		put(prefix+".description", pp.Description)
	}
	if p.Type != "" {
		m["type"] = string(p.Type)
	}
	paid("paid", p.Paid)
	for i, o := range p.PaidPricing {
		paid(fmt.Sprintf("paid_pricing[%d]", i), &catalogschema.PaidPricing{Type: o.Type, Freeform: o.Freeform, Description: o.Description})
	}
	if p.Component != nil {
		for i, o := range p.Component.Options {
			paid(fmt.Sprintf("component.options[%d].paid", i), o.Paid)
		}
	}
	return m
}

func ptr(v int64) *int64 { return &v }

func satAdd(a, b int64) int64 {
	s := a + b
	if (a > 0 && b > 0 && s < 0) || (a < 0 && b < 0 && s >= 0) {
		if a > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return s
}

// changeBP computes (new-old)*10000/old with big integers, so no amount can
// overflow, and clamps to int64. From zero, any rise is "infinite".
func changeBP(from, to int64) int64 {
	if from == to {
		return 0
	}
	if from <= 0 {
		if to > from {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	n := new(big.Int).Sub(big.NewInt(to), big.NewInt(from))
	n.Mul(n, big.NewInt(10000))
	n.Quo(n, big.NewInt(from))
	if !n.IsInt64() {
		if n.Sign() > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return n.Int64()
}

// serviceTexts flattens the agent-readable texts of a service (other than
// its pricing description) into field → text; empty texts are left out.
func serviceTexts(s *catalogschema.Service) map[string]string {
	m := map[string]string{}
	put := func(f, v string) {
		if v != "" {
			m[f] = v
		}
	}
	put("description", s.Description)
	if s.LLMContext != nil {
		put("llm_context", *s.LLMContext)
	}
	put("provider_name", s.ProviderName)
	if s.Group != nil {
		put("group", *s.Group)
	}
	put("categories", strings.Join(s.Categories, ", "))
	for i, p := range s.Prices {
		put(fmt.Sprintf("prices[%d].description", i), p.Description)
	}
	put("configuration_schema", compactJSON(s.ConfigurationSchema))
	put("provider_configuration_schema", compactJSON(s.ProviderConfigurationSchema))
	for k, v := range s.Extra {
		put("extra."+k, compactJSON(v))
	}
	return m
}

// compactJSON renders raw JSON without insignificant white space, so a
// re-indented document is not a change.
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if len(raw) == 0 || json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// diffTexts compares the agent-readable texts of two snapshots. With
// withPricing, pricing texts are included (as "pricing.<field>"), and
// services only in new count with all their texts new; otherwise added
// services are left to Drift.Added and pricing to Drift.PricingText.
func diffTexts(old, new *Snapshot, withPricing bool) []TextChange {
	var out []TextChange
	cmpMaps := func(service string, om, nm map[string]string) {
		fields := make([]string, 0, len(om)+len(nm))
		for f := range om {
			fields = append(fields, f)
		}
		for f := range nm {
			if _, ok := om[f]; !ok {
				fields = append(fields, f)
			}
		}
		slices.Sort(fields)
		for _, f := range fields {
			if om[f] != nm[f] {
				out = append(out, TextChange{Service: service, Field: f, Old: om[f], New: nm[f]})
			}
		}
	}
	cmpMaps("", providerTexts(old), providerTexts(new))
	oldSvc, newSvc := services(old), services(new)
	ids := make([]string, 0, len(newSvc))
	for id := range newSvc {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		os, had := oldSvc[id]
		if !had && !withPricing {
			continue
		}
		om := map[string]string{}
		if had {
			om = serviceTexts(os)
		}
		nm := serviceTexts(newSvc[id])
		if withPricing {
			var op catalogschema.Pricing
			if had {
				op = os.Pricing
			}
			for f, v := range pricingTexts(op) {
				om["pricing."+f] = v
			}
			for f, v := range pricingTexts(newSvc[id].Pricing) {
				nm["pricing."+f] = v
			}
		}
		cmpMaps(id, om, nm)
	}
	return out
}

func providerTexts(s *Snapshot) map[string]string {
	m := map[string]string{}
	if s == nil {
		return m
	}
	if s.Metadata != nil && s.Metadata.Name != "" {
		m["metadata.name"] = s.Metadata.Name
	}
	if s.Catalog != nil && s.Catalog.ProviderName != "" {
		m["catalog.provider_name"] = s.Catalog.ProviderName
	}
	return m
}

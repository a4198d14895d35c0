package discovery

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/catalogschema"
)

func snap(id string, signed bool, svcs ...*catalogschema.Service) *Snapshot {
	s := &Snapshot{ProviderID: id, Metadata: testMeta(id, "https://"+id+".example", signed), Catalog: testCatalog(id, svcs...)}
	if signed {
		s.Signature = &SignatureInfo{KeyID: id + "-k1", Algorithm: "EdDSA"}
	}
	return s
}

func TestDiff(t *testing.T) {
	old := snap("p", true, domainService(1000), computeServices()[0])
	nw := snap("p", false, domainService(1250), computeServices()[1])
	nw.Metadata.TermsOfService.Version = "2026-07-01"
	d := Diff(old, nw)
	if !slices.Equal(d.Added, []string{"api:inference"}) || !slices.Equal(d.Removed, []string{"compute:small"}) {
		t.Errorf("added/removed: %v %v", d.Added, d.Removed)
	}
	if len(d.PriceChanges) != 1 || d.PriceChanges[0].ChangeBP != 2500 || *d.PriceChanges[0].Old != 1000 || *d.PriceChanges[0].New != 1250 ||
		d.PriceChanges[0].Percent() != 25 {
		t.Errorf("price changes: %+v", d.PriceChanges)
	}
	if d.Terms == nil || d.Terms.OldVersion != "2026-01-01" || d.Terms.NewVersion != "2026-07-01" {
		t.Errorf("terms: %+v", d.Terms)
	}
	if !d.Signature.Downgrade() || d.Signature.OldKeyID != "p-k1" {
		t.Errorf("signature: %+v", d.Signature)
	}
	reasons := (*DriftPolicy)(nil).Reasons(d)
	if len(reasons) != 2 {
		t.Errorf("default policy reasons: %q", reasons)
	}
	if r := (&DriftPolicy{MaxPriceIncreaseBP: 3000, AllowDowngrade: true}).Reasons(d); len(r) != 0 {
		t.Errorf("lenient policy reasons: %q", r)
	}
	// Key rotation is reported but does not quarantine by itself.
	rot := snap("p", true, domainService(1000), computeServices()[0])
	rot.Signature.KeyID = "p-k2"
	if d := Diff(old, rot); d.Signature == nil || d.Signature.NewKeyID != "p-k2" || len((*DriftPolicy)(nil).Reasons(d)) != 0 {
		t.Errorf("rotation: %+v", d.Signature)
	}
	// A price appearing on a free service is an unbounded increase.
	free := domainService(0)
	free.Prices = nil
	if d := Diff(snap("p", false, free), snap("p", false, domainService(1))); d.PriceChanges[0].ChangeBP != math.MaxInt64 || d.PriceChanges[0].Old != nil {
		t.Errorf("free to paid: %+v", d.PriceChanges)
	}
	if d := Diff(nil, old); len(d.Added) != 2 || len(d.PriceChanges) != 0 {
		t.Errorf("from nothing: %+v", d)
	}
}

func TestChangeBPExtremes(t *testing.T) {
	for _, tc := range []struct{ from, to, want int64 }{
		{100, 120, 2000}, {100, 121, 2100}, {3, 4, 3333}, {100, 50, -5000},
		{1, math.MaxInt64, math.MaxInt64}, {math.MaxInt64, 1, -9999}, {0, 5, math.MaxInt64}, {7, 7, 0},
	} {
		if got := changeBP(tc.from, tc.to); got != tc.want {
			t.Errorf("changeBP(%d, %d) = %d, want %d", tc.from, tc.to, got, tc.want)
		}
	}
}

func genCatalog(t *rapid.T, label string) *Snapshot {
	ids := rapid.SliceOfDistinct(rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f", "g"}), rapid.ID[string]).Draw(t, label+"ids")
	var svcs []*catalogschema.Service
	for _, id := range ids {
		s := domainService(rapid.Int64Range(0, 1_000_000).Draw(t, label+"amount-"+id))
		s.ServiceID = id
		svcs = append(svcs, s)
	}
	return snap("p", rapid.Bool().Draw(t, label+"signed"), svcs...)
}

// TestDiffProperties: Diff(a, a) is empty; Diff reports exactly the added
// and removed services; quarantine happens iff some increase exceeds the
// threshold (or the catalog lost its signature).
func TestDiffProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genCatalog(t, "a"), genCatalog(t, "b")
		if d := Diff(a, a); !d.Empty() {
			t.Fatalf("Diff(a, a) = %+v", d)
		}
		d := Diff(a, b)
		ina, inb := services(a), services(b)
		for id := range inb {
			if _, ok := ina[id]; ok == slices.Contains(d.Added, id) {
				t.Fatalf("added %q misreported: %v", id, d.Added)
			}
		}
		for id := range ina {
			if _, ok := inb[id]; ok == slices.Contains(d.Removed, id) {
				t.Fatalf("removed %q misreported: %v", id, d.Removed)
			}
		}
		th := rapid.Int64Range(1, 100_000).Draw(t, "threshold")
		over := false
		for id, sb := range inb {
			if sa, ok := ina[id]; ok {
				o, n := sa.Prices[0].Amount, sb.Prices[0].Amount
				// n > o*(1+th/10000), in exact integer arithmetic.
				if o == 0 && n > 0 || o > 0 && changeBP(o, n) > th {
					over = true
				}
			}
		}
		reasons := (&DriftPolicy{MaxPriceIncreaseBP: th, AllowDowngrade: true}).Reasons(d)
		if over != (len(reasons) > 0) {
			t.Fatalf("over=%v reasons=%q drift=%+v", over, reasons, d.PriceChanges)
		}
		down := (&DriftPolicy{MaxPriceIncreaseBP: -1}).Reasons(d)
		if (a.Signed() && !b.Signed()) != (len(down) > 0) {
			t.Fatalf("downgrade rule: %q", down)
		}
	})
}

// TestChangeBPExact checks the basis-point arithmetic against big-number
// free reasoning: changeBP(o, n) > th  iff  (n-o)*10000 > th*o (for small values).
func TestChangeBPExact(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := rapid.Int64Range(1, 1<<30).Draw(t, "o")
		n := rapid.Int64Range(0, 1<<30).Draw(t, "n")
		th := rapid.Int64Range(0, 1<<20).Draw(t, "th")
		want := (n-o)*10000 >= (th+1)*o // floor semantics of the quotient
		if got := changeBP(o, n) > th; got != want && n > o {
			t.Fatalf("%s", fmt.Sprint(o, n, th, got, want))
		}
	})
}

func meteredService(amount int64, maxAmount *int64) *catalogschema.Service {
	s := domainService(amount)
	s.ServiceID = "api:inference"
	s.Prices = []catalogschema.Price{{Amount: amount, Currency: "USD", Basis: catalogschema.BasisMetered, Unit: "request", MaxAmount: maxAmount}}
	return s
}

// A raised upper bound (max_amount) is a price increase for quarantine,
// even when the amount itself is unchanged; losing the bound of a metered
// price is an unbounded rise.
func TestDiffMaxAmount(t *testing.T) {
	m := func(v int64) *int64 { return &v }
	base := snap("p", false, meteredService(10, m(10_000)))
	for _, tc := range []struct {
		name       string
		max        *int64
		wantBP     int64
		quarantine bool
	}{
		{"within threshold", m(11_000), 1000, false},
		{"above threshold", m(15_000), 5000, true},
		{"bound removed", nil, math.MaxInt64, true},
		{"lowered", m(5_000), -5000, false},
	} {
		d := Diff(base, snap("p", false, meteredService(10, tc.max)))
		if len(d.PriceChanges) != 1 {
			t.Fatalf("%s: changes %+v", tc.name, d.PriceChanges)
		}
		c := d.PriceChanges[0]
		if c.ChangeBP != 0 || c.MaxChangeBP != tc.wantBP || *c.OldMax != 10_000 {
			t.Errorf("%s: %+v", tc.name, c)
		}
		if r := (*DriftPolicy)(nil).Reasons(d); (len(r) > 0) != tc.quarantine {
			t.Errorf("%s: reasons %q", tc.name, r)
		}
		if tc.quarantine && d.MaxIncreaseBP() != tc.wantBP {
			t.Errorf("%s: MaxIncreaseBP %d", tc.name, d.MaxIncreaseBP())
		}
	}
	// A metered price without a bound is unbounded on both sides: an amount
	// change is reported, the bound is not.
	d := Diff(snap("p", false, meteredService(10, nil)), snap("p", false, meteredService(11, nil)))
	if c := d.PriceChanges[0]; c.ChangeBP != 1000 || c.MaxChangeBP != 0 || *c.NewMax != UnboundedAmount {
		t.Errorf("unbounded metered: %+v", c)
	}
	// A fixed price's bound is its amount: one reason, not two.
	d = Diff(snap("p", false, domainService(1000)), snap("p", false, domainService(2000)))
	if r := (*DriftPolicy)(nil).Reasons(d); len(r) != 1 {
		t.Errorf("fixed price: reasons %q", r)
	}
}

// Changes to the human-readable pricing text are reported, field by field,
// and never quarantine.
func TestDiffPricingText(t *testing.T) {
	s := func(p *string) *string { return p }
	text := func(v string) *string { return &v }
	a := domainService(1000)
	a.Pricing = catalogschema.Pricing{Type: catalogschema.PricingPaid,
		Paid:        &catalogschema.PaidPricing{Type: "freeform", Freeform: text("$10 per domain")},
		PaidPricing: []catalogschema.PricingOption{{Type: "freeform", Freeform: text("basic"), Description: text("one domain")}},
		Component: &catalogschema.ComponentPricing{Options: []catalogschema.ComponentOption{
			{Type: "paid", Paid: &catalogschema.PaidPricing{Type: "freeform", Freeform: text("$1/h")}}}},
	}
	b := domainService(1000)
	b.Pricing = catalogschema.Pricing{Type: catalogschema.PricingPaid,
		Paid:        &catalogschema.PaidPricing{Type: "freeform", Freeform: text("$10 per domain, $50 renewal")},
		PaidPricing: []catalogschema.PricingOption{{Type: "freeform", Freeform: text("basic"), Description: s(nil)}},
		Component: &catalogschema.ComponentPricing{Options: []catalogschema.ComponentOption{
			{Type: "paid", Paid: &catalogschema.PaidPricing{Type: "freeform", Freeform: text("$2/h")}}}},
	}
	d := Diff(snap("p", false, a), snap("p", false, b))
	want := []PricingTextChange{
		{Service: "registrar:domain", Field: "component.options[0].paid.freeform", Old: "$1/h", New: "$2/h"},
		{Service: "registrar:domain", Field: "paid.freeform", Old: "$10 per domain", New: "$10 per domain, $50 renewal"},
		{Service: "registrar:domain", Field: "paid_pricing[0].description", Old: "one domain"},
	}
	if !slices.Equal(d.PricingText, want) {
		t.Errorf("pricing text:\n got %+v\nwant %+v", d.PricingText, want)
	}
	if d.Empty() || len(d.PriceChanges) != 0 {
		t.Errorf("drift: %+v", d)
	}
	if r := (*DriftPolicy)(nil).Reasons(d); len(r) != 0 {
		t.Errorf("informational change quarantined: %q", r)
	}
	if d := Diff(snap("p", false, a), snap("p", false, a)); !d.Empty() {
		t.Errorf("same pricing: %+v", d)
	}
}

package catalogschema_test

import (
	"errors"
	"math"
	"testing"

	"github.com/agentprov/agentprov/catalogschema"
	"pgregory.net/rapid"
)

func i64(v int64) *int64 { return &v }

func TestMaxChargeWithin(t *testing.T) {
	paid := goldenService(t, "workers:paid")       // $5/month + metered capped at $100
	domain := goldenService(t, "registrar:domain") // one-time up to $120
	free := goldenService(t, "workers:free")
	cases := []struct {
		name string
		s    *catalogschema.Service
		u    catalogschema.Usage
		want catalogschema.Charge
	}{
		{"worst month", paid, catalogschema.Usage{}, catalogschema.Charge{Amount: 500 + 10000, Currency: "USD", Bounded: true}},
		{"known usage", paid, catalogschema.Usage{Months: 1, Units: map[string]int64{"request": 2_500_000}}, catalogschema.Charge{Amount: 500 + 3*30, Currency: "USD", Bounded: true}},
		{"usage above cap", paid, catalogschema.Usage{Months: 2, Units: map[string]int64{"request": 1 << 60}}, catalogschema.Charge{Amount: 2 * (500 + 10000), Currency: "USD", Bounded: true}},
		{"one time is once", domain, catalogschema.Usage{Months: 36}, catalogschema.Charge{Amount: 12000, Currency: "USD", Bounded: true}},
		{"free", free, catalogschema.Usage{Months: 12}, catalogschema.Charge{Amount: 0, Currency: "USD", Bounded: true}},
	}
	for _, tc := range cases {
		got, err := tc.s.MaxChargeWithin("USD", tc.u)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if got, _ := paid.WorstCaseMonthly("USD"); got.Amount != 10500 {
		t.Errorf("WorstCaseMonthly = %+v", got)
	}
	if _, err := paid.WorstCaseMonthly("EUR"); !errors.Is(err, catalogschema.ErrCurrency) {
		t.Errorf("currency mismatch: %v", err)
	}
	yearly := &catalogschema.Service{Prices: []catalogschema.Price{{Amount: 1200, Currency: "USD", Basis: catalogschema.BasisYearly}}}
	for months, want := range map[int]int64{1: 1200, 12: 1200, 13: 2400, 25: 3600} {
		if got, _ := yearly.MaxChargeWithin("USD", catalogschema.Usage{Months: months}); got.Amount != want {
			t.Errorf("yearly over %d months = %d, want %d", months, got.Amount, want)
		}
	}
	uncapped := &catalogschema.Service{Prices: []catalogschema.Price{
		{Amount: 100, Currency: "USD", Basis: catalogschema.BasisMonthly},
		{Amount: 7, Currency: "USD", Basis: catalogschema.BasisMetered, Unit: "search", PerUnits: 1000},
	}}
	if got, _ := uncapped.WorstCaseMonthly("USD"); got.Bounded || got.Amount != 100 {
		t.Errorf("uncapped metered: %+v", got)
	}
	if got, _ := uncapped.MaxChargeWithin("USD", catalogschema.Usage{Units: map[string]int64{"search": 1001}}); !got.Bounded || got.Amount != 114 {
		t.Errorf("metered with known usage: %+v", got)
	}
	unpriced := &catalogschema.Service{Pricing: catalogschema.Pricing{Type: catalogschema.PricingPaid}}
	if got, err := unpriced.WorstCaseMonthly("USD"); err != nil || got.Bounded {
		t.Errorf("paid service without prices must be unbounded: %+v %v", got, err)
	}
	huge := &catalogschema.Service{Prices: []catalogschema.Price{{Amount: math.MaxInt64 / 2, Currency: "USD", Basis: catalogschema.BasisMonthly}}}
	if _, err := huge.MaxChargeWithin("USD", catalogschema.Usage{Months: 3}); !errors.Is(err, catalogschema.ErrOverflow) {
		t.Errorf("overflow: %v", err)
	}
}

// TestMaxChargeProperties: the worst case never decreases with more months
// or more usage, and a bounded charge is never below any single price.
func TestMaxChargeProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := &catalogschema.Service{Prices: rapid.SliceOfN(genPrice("USD"), 1, 5).Draw(t, "prices")}
		m := rapid.IntRange(1, 48).Draw(t, "months")
		units := rapid.Int64Range(0, 1<<40).Draw(t, "units")
		u1 := catalogschema.Usage{Months: m, Units: map[string]int64{"unit": units}}
		u2 := catalogschema.Usage{Months: m + rapid.IntRange(0, 12).Draw(t, "more"), Units: map[string]int64{"unit": units + rapid.Int64Range(0, 1<<20).Draw(t, "moreunits")}}
		a, err1 := s.MaxChargeWithin("USD", u1)
		b, err2 := s.MaxChargeWithin("USD", u2)
		if err1 != nil || err2 != nil {
			t.Fatalf("errors: %v %v", err1, err2)
		}
		if b.Amount < a.Amount {
			t.Fatalf("more months/usage cost less: %d < %d", b.Amount, a.Amount)
		}
		for _, p := range s.Prices {
			if p.Basis != catalogschema.BasisMetered && a.Amount < p.Amount {
				t.Fatalf("charge %d below price %d", a.Amount, p.Amount)
			}
		}
	})
}

func genPrice(currency string) *rapid.Generator[catalogschema.Price] {
	return rapid.Custom(func(t *rapid.T) catalogschema.Price {
		p := catalogschema.Price{
			Amount:   rapid.Int64Range(0, 1_000_000).Draw(t, "amount"),
			Currency: currency,
			Basis:    rapid.SampledFrom([]catalogschema.PriceBasis{catalogschema.BasisOneTime, catalogschema.BasisMonthly, catalogschema.BasisYearly, catalogschema.BasisMetered}).Draw(t, "basis"),
		}
		if p.Basis == catalogschema.BasisMetered {
			p.Unit = "unit"
			p.PerUnits = rapid.Int64Range(0, 10_000).Draw(t, "per")
		}
		if rapid.Bool().Draw(t, "bounded") {
			p.MaxAmount = i64(p.Amount + rapid.Int64Range(0, 1_000_000).Draw(t, "extra"))
		}
		if rapid.Bool().Draw(t, "described") {
			p.Description = rapid.StringMatching(`[a-z ]{1,20}`).Draw(t, "desc")
		}
		return p
	})
}

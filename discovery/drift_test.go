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

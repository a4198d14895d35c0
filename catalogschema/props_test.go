package catalogschema_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

func genOptString() *rapid.Generator[*string] {
	return rapid.Custom(func(t *rapid.T) *string {
		if rapid.Bool().Draw(t, "null") {
			return nil
		}
		s := rapid.String().Draw(t, "s")
		return &s
	})
}

func genService(id string) *rapid.Generator[*catalogschema.Service] {
	return rapid.Custom(func(t *rapid.T) *catalogschema.Service {
		s := &catalogschema.Service{
			ServiceID:   id,
			Description: rapid.String().Draw(t, "description"),
			Kind:        rapid.SampledFrom([]catalogschema.Kind{catalogschema.KindPlan, catalogschema.KindDeployable}).Draw(t, "kind"),
			Scope:       rapid.SampledFrom([]catalogschema.Scope{catalogschema.ScopeAccount, catalogschema.ScopeProject}).Draw(t, "scope"),
			Categories:  rapid.SliceOfN(rapid.StringMatching(`[a-z]{1,10}`), 0, 3).Draw(t, "categories"),
			Group:       genOptString().Draw(t, "group"),
			LLMContext:  genOptString().Draw(t, "llm"),
			Pricing: catalogschema.Pricing{
				Type: rapid.SampledFrom([]catalogschema.PricingType{catalogschema.PricingFree, catalogschema.PricingPaid, catalogschema.PricingComponent}).Draw(t, "ptype"),
			},
		}
		if rapid.Bool().Draw(t, "haspaid") {
			s.Pricing.Paid = &catalogschema.PaidPricing{Type: "freeform", Freeform: genOptString().Draw(t, "freeform"), Description: genOptString().Draw(t, "pdesc")}
		}
		if rapid.Bool().Draw(t, "hasschema") {
			s.ConfigurationSchema = json.RawMessage(rapid.SampledFrom([]string{`{}`, `{"type":"object","properties":{"n":{"type":"string"}}}`}).Draw(t, "schema"))
		}
		if rapid.Bool().Draw(t, "hasprices") {
			s.Prices = rapid.SliceOfN(genPrice(rapid.SampledFrom([]string{"USD", "EUR", "JPY"}).Draw(t, "cur")), 1, 4).Draw(t, "prices")
		}
		for i, n := 0, rapid.IntRange(0, 2).Draw(t, "nextra"); i < n; i++ {
			if s.Extra == nil {
				s.Extra = map[string]json.RawMessage{}
			}
			s.Extra[fmt.Sprintf("x_future_%d", i)] = json.RawMessage(fmt.Sprint(rapid.IntRange(-5, 5).Draw(t, "xv")))
		}
		return s
	})
}

func genCatalog() *rapid.Generator[*catalogschema.Catalog] {
	return rapid.Custom(func(t *rapid.T) *catalogschema.Catalog {
		ids := rapid.SliceOfNDistinct(genServiceID(), 0, 6, rapid.ID[string]).Draw(t, "ids")
		c := &catalogschema.Catalog{
			ProtocolVersion: "0.1",
			ProviderID:      genProviderID().Draw(t, "provider"),
			ProviderName:    rapid.StringMatching(`[A-Za-z][A-Za-z .]{0,30}`).Draw(t, "name"),
			UpdatedAt:       time.Unix(rapid.Int64Range(0, 1<<33).Draw(t, "sec"), rapid.Int64Range(0, 999_999_999).Draw(t, "nsec")).UTC(),
			Services:        []*catalogschema.Service{},
		}
		for _, id := range ids {
			c.Services = append(c.Services, genService(id).Draw(t, id))
		}
		return c
	})
}

// TestCatalogEncodeParseProperty: every generated valid catalog passes
// Validate and survives encode → ParseCatalog unchanged.
func TestCatalogEncodeParseProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genCatalog().Draw(t, "catalog")
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := catalogschema.ParseCatalog(b, nil)
		if err != nil {
			t.Fatalf("ParseCatalog: %v\n%s", err, b)
		}
		if diff := cmp.Diff(c, got, cmpCatalog...); diff != "" {
			t.Fatalf("changed (-generated +parsed):\n%s", diff)
		}
	})
}

// TestParseNeverPanicsOnMutations: byte-level mutations of a valid
// document yield a catalog or one of the package's typed errors.
func TestParseNeverPanicsOnMutations(t *testing.T) {
	golden := readTestdata(t, "catalog.json")
	rapid.Check(t, func(t *rapid.T) {
		b := append([]byte(nil), golden...)
		for i, n := 0, rapid.IntRange(1, 8).Draw(t, "n"); i < n; i++ {
			pos := rapid.IntRange(0, len(b)-1).Draw(t, "pos")
			b[pos] = rapid.SampledFrom([]byte(`{}[]",:\0az-/#$ 9`)).Draw(t, "byte")
		}
		_, err := catalogschema.ParseCatalog(b, nil)
		if err != nil {
			if _, ok := err.(catalogschema.ProtocolError); !ok {
				t.Fatalf("untyped error %T: %v", err, err)
			}
		}
	})
}

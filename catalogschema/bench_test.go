package catalogschema_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/agentprov/agentprov/catalogschema"
)

// pairedBench runs baseline and subject alternately in each iteration and
// reports the subject's cost as a multiple of the baseline measured in the
// same run, so the figure does not depend on the machine's speed.
func pairedBench(b *testing.B, baseline, subject func()) {
	b.Helper()
	var base, subj time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		baseline()
		t1 := time.Now()
		subject()
		subj += time.Since(t1)
		base += t1.Sub(t0)
	}
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "baseline-ns/op")
	b.ReportMetric(float64(subj.Nanoseconds())/float64(b.N), "subject-ns/op")
	if base > 0 {
		b.ReportMetric(float64(subj)/float64(base), "x-baseline")
	}
}

// BenchmarkParseCatalogStripe: ParseCatalog (limits, schema, semantics) on
// the 48 catalogs imported from the 161-service capture, versus plain
// json.Unmarshal of the same bytes into the same types.
func BenchmarkParseCatalogStripe(b *testing.B) {
	catalogs, err := catalogschema.ImportStripeProjects(stripeFixture(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	docs := make([][]byte, len(catalogs))
	size := 0
	for i, c := range catalogs {
		if docs[i], err = json.Marshal(c); err != nil {
			b.Fatal(err)
		}
		size += len(docs[i])
	}
	b.SetBytes(int64(size))
	pairedBench(b, func() {
		for _, d := range docs {
			var c catalogschema.Catalog
			if err := json.Unmarshal(d, &c); err != nil {
				b.Fatal(err)
			}
		}
	}, func() {
		for _, d := range docs {
			if _, err := catalogschema.ParseCatalog(d, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseCatalogStripeVsAny: ParseCatalog on the same 48 catalogs
// versus json.Unmarshal into any, the cheapest decode that sees every byte.
func BenchmarkParseCatalogStripeVsAny(b *testing.B) {
	catalogs, err := catalogschema.ImportStripeProjects(stripeFixture(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	docs := make([][]byte, len(catalogs))
	size := 0
	for i, c := range catalogs {
		if docs[i], err = json.Marshal(c); err != nil {
			b.Fatal(err)
		}
		size += len(docs[i])
	}
	b.SetBytes(int64(size))
	pairedBench(b, func() {
		for _, d := range docs {
			var v any
			if err := json.Unmarshal(d, &v); err != nil {
				b.Fatal(err)
			}
		}
	}, func() {
		for _, d := range docs {
			if _, err := catalogschema.ParseCatalog(d, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkImportStripeProjects: the whole import with validation versus
// json.Unmarshal of the capture into generic maps.
func BenchmarkImportStripeProjects(b *testing.B) {
	data := stripeFixture(b)
	b.SetBytes(int64(len(data)))
	pairedBench(b, func() {
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}, func() {
		if _, err := catalogschema.ImportStripeProjects(data, nil); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkParseRef versus splitting on '/' with no validation.
func BenchmarkParseRef(b *testing.B) {
	const in = "cloudflare/registrar:domain"
	var sink int
	pairedBench(b, func() {
		for i := 0; i < len(in); i++ {
			if in[i] == '/' {
				sink += i
			}
		}
	}, func() {
		r, err := catalogschema.ParseRef(in)
		if err != nil {
			b.Fatal(err)
		}
		sink += len(r.Service)
	})
	_ = sink
}

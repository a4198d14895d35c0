package payment_test

import (
	"testing"
	"time"

	"github.com/agentprov/agentprov/payment"
)

// BenchmarkCanonicalJSON reports fingerprinting a redemption body
// (canonical JSON + SHA-256) as a ratio to json.Valid on the same bytes.
// ns/op covers both.
func BenchmarkCanonicalJSON(b *testing.B) {
	body := []byte(`{"token":"eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJodHRwczovL29yY2hlc3RyYXRvci5leGFtcGxlIn0.sig","amount":{"currency":"USD","amount":1299}}`)
	var base, work time.Duration
	for range b.N {
		t0 := time.Now()
		_ = jsonValid(body)
		t1 := time.Now()
		_ = payment.Fingerprint(body)
		work += time.Since(t1)
		base += t1.Sub(t0)
	}
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "jsonvalid-ns/op")
	b.ReportMetric(float64(work)/float64(base), "x-jsonvalid")
}

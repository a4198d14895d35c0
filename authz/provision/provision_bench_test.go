package provision_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
)

// BenchmarkAutoCreateFlow measures the whole first-contact flow over
// loopback HTTP: the orchestrator signs a consent receipt and an attestation,
// POSTs the jwt-bearer token request, the provider verifies both, creates the
// account and issues a token. As its baseline, measured in the same run, it
// times only signing and verifying the same two JWTs; "x-baseline" is how
// many times the full flow costs.
func BenchmarkAutoCreateFlow(b *testing.B) {
	o := newOrchestrator(b, orchIssuer)
	p := newProvider(b, "acme", providerConfig{trust: []*orchestrator{o}, issuers: []string{orchIssuer}})
	baseVerifier, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: orchIssuer, Keys: o.att.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	client := p.srv.Client()
	run := 0
	nextUser := func() user {
		run++
		return user{sub: fmt.Sprintf("bench-%d", run), email: fmt.Sprintf("bench-%d@example.com", run), verified: true}
	}

	start := time.Now()
	for range b.N {
		if _, err := baseVerifier.Verify(ctx, o.attest(b, "acme", nextUser(), false)); err != nil {
			b.Fatal(err)
		}
	}
	baseline := time.Since(start)

	b.ResetTimer()
	for range b.N {
		resp, err := client.PostForm(p.srv.URL+provision.PathToken, jwtBearer(o.attest(b, "acme", nextUser(), false)))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.StopTimer()
	flow := b.Elapsed()
	b.ReportMetric(float64(baseline.Nanoseconds())/float64(b.N), "baseline-ns/op")
	b.ReportMetric(float64(flow)/float64(baseline), "x-baseline")
}

package provision_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/authztesting"
)

// BenchmarkAutoCreateFlow measures the whole first-contact flow over
// loopback HTTP: the orchestrator signs a consent receipt and an attestation,
// POSTs the jwt-bearer token request, the provider verifies both, creates the
// account and issues a token. As its baseline, measured in the same run, it
// times only signing and verifying the same two JWTs; "x-baseline" is how
// many times the full flow costs.
func BenchmarkAutoCreateFlow(b *testing.B) {
	o := authztesting.NewOrchestrator(b, authztesting.OrchestratorIssuer)
	p := authztesting.NewProvider(b, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer}})
	baseVerifier, err := authz.NewVerifier("acme", []authz.TrustedIssuer{{Issuer: authztesting.OrchestratorIssuer, Keys: o.Attester.JWKS()}}, authz.NewMemoryReplayStore(nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	client := p.Server.Client()
	run := 0
	nextUser := func() authztesting.User {
		run++
		return authztesting.User{Sub: fmt.Sprintf("bench-%d", run), Email: fmt.Sprintf("bench-%d@example.com", run), Verified: true}
	}

	start := time.Now()
	for range b.N {
		if _, err := baseVerifier.Verify(ctx, o.Attest(b, "acme", nextUser(), false)); err != nil {
			b.Fatal(err)
		}
	}
	baseline := time.Since(start)

	b.ResetTimer()
	for range b.N {
		resp, err := client.PostForm(p.Server.URL+provision.PathToken, authztesting.JWTBearer(o.Attest(b, "acme", nextUser(), false)))
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

package demo

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
)

// BenchmarkPaidCall measures one metered API call paid through HTTP 402
// (challenge, token minted under the caps, verification, redemption at
// the orchestrator, settlement, receipt) against a plain bearer-token call
// to the same provider, measured in the same run: x-plain is the ratio.
func BenchmarkPaidCall(b *testing.B) {
	p, ctx := newPair(b), context.Background()
	ref := "cloud/" + ServiceInference
	if _, err := p.orch.Connect(ctx, ConnectRequest{Project: "p", Ref: ref, AcceptTerms: true}); err != nil {
		b.Fatal(err)
	}
	// The user lifts the cap so the benchmark measures payment, not refusals.
	if _, err := p.orch.Ledger.SetCap(ctx, budget.CapChange{Project: "p", Provider: "cloud", Limit: budget.USD(1 << 50),
		By: budget.Principal{Kind: budget.PrincipalUser, ID: "u1"}}); err != nil {
		b.Fatal(err)
	}
	client, err := p.orch.AgentClient("p", ref, budget.USD(500))
	if err != nil {
		b.Fatal(err)
	}
	call := func(method, path string) {
		req, _ := http.NewRequestWithContext(ctx, method, p.cloud.BaseURL()+path, strings.NewReader(`{}`))
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s %s: HTTP %d", method, path, resp.StatusCode)
		}
	}
	const baselineCalls = 200
	start := time.Now()
	for range baselineCalls {
		call(http.MethodGet, "/v1/resources")
	}
	plain := time.Since(start) / baselineCalls
	b.ResetTimer()
	for b.Loop() {
		call(http.MethodPost, "/v1/inference")
	}
	b.StopTimer()
	paid := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(plain.Nanoseconds()), "plain-ns/op")
	b.ReportMetric(float64(paid)/float64(plain), "x-plain")
}

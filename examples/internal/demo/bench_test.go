package demo

import (
	"net/url"

	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"

	"github.com/agentprov/agentprov/budget"
)

// BenchmarkPaidCall measures one metered API call paid within an open
// session (the per-call authorization checked locally by the provider)
// against a plain bearer-token call to the same provider, measured in the
// same run: x-plain is the ratio. oneshot-x-plain is the same call paid
// one-shot through HTTP 402 (challenge, token minted under the caps,
// verification, redemption at the orchestrator, settlement, receipt).
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
	session, err := p.orch.AgentClient("p", ref, budget.USD(500))
	if err != nil {
		b.Fatal(err)
	}
	// The same agent client paying every call one-shot (sessions off).
	u, _ := url.Parse(p.cloud.BaseURL())
	one, err := payment.NewTransport(issuer.IssuerPayer(p.orch.Issuer, "p"), map[string]string{u.Scheme + "://" + u.Host: "cloud"},
		budget.USD(500), &payment.TransportOptions{Base: http.DefaultTransport, SessionCalls: -1})
	if err != nil {
		b.Fatal(err)
	}
	oneShot := &http.Client{Transport: &bearer{vault: p.orch.Vault, project: "p", ref: ref, base: one}}
	client := session
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
	const oneShotCalls = 50
	client = oneShot
	start = time.Now()
	for range oneShotCalls {
		call(http.MethodPost, "/v1/inference")
	}
	oneshot := time.Since(start) / oneShotCalls
	client = session
	call(http.MethodPost, "/v1/inference") // opens the session
	b.ResetTimer()
	for b.Loop() {
		call(http.MethodPost, "/v1/inference")
	}
	b.StopTimer()
	paid := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(plain.Nanoseconds()), "plain-ns/op")
	b.ReportMetric(float64(oneshot.Nanoseconds()), "oneshot-ns/op")
	b.ReportMetric(float64(paid)/float64(plain), "x-plain")
	b.ReportMetric(float64(oneshot)/float64(plain), "oneshot-x-plain")
}

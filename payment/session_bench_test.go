package payment_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paywall"
)

// BenchmarkSessionCall measures a paid call inside an open session over
// loopback against the same call unpaid, in the same run over the same
// keep-alive connection (paid/unpaid is the ratio).
func BenchmarkSessionCall(b *testing.B) {
	w := newSessWorld(b, 1<<50)
	w.crashAgentWith(&payment.TransportOptions{SessionCalls: 1 << 20})
	plain := &http.Client{Transport: w.prov.Client().Transport}
	run := func(c *http.Client, path string) {
		resp, err := c.Get(w.prov.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	run(plain, "/free")
	run(w.client, "/v1/infer") // opens the session
	run(w.client, "/v1/infer")
	b.ReportAllocs()
	b.ResetTimer()
	// Interleaved, so that load on a shared machine hits both alike.
	var unpaid, paid time.Duration
	for range b.N {
		t0 := time.Now()
		run(plain, "/free")
		t1 := time.Now()
		run(w.client, "/v1/infer")
		unpaid += t1.Sub(t0)
		paid += time.Since(t1)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(unpaid.Nanoseconds())/n, "unpaid-ns/op")
	b.ReportMetric(float64(paid.Nanoseconds())/n, "paid-ns/op")
	b.ReportMetric(float64(paid)/float64(unpaid), "x-baseline")
}

// BenchmarkSessionCheck measures the provider's per-call check of a
// session call (parse the credential, verify its tag, consume it in the
// memory store) against one Ed25519 verification of a payment token's
// signing input, in the same run, interleaved.
func BenchmarkSessionCheck(b *testing.B) {
	key := payment.SessionKey(sessSecret, "hold_bench")
	store := paywall.NewMemorySessionStore()
	ctx := context.Background()
	now := time.Now()
	if _, err := store.Open(ctx, paywall.SessionRecord{ID: "hold_bench", Max: budget.USD(1 << 60), Deadline: now.Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	echo := []byte(`{"id":"TVss0VTum9GMqfFffbT6sp1H4ReFTmPywmUY_DM3Y2Q","realm":"api.cloudflare.example","method":"agentprov","intent":"session","request":"eyJhbW91bnQiOiIyNTAiLCJjdXJyZW5jeSI6IlVTRCIsIm1ldGhvZERldGFpbHMiOnsic2VydmljZSI6ImNsb3VkZmxhcmUvYXBpOmluZmVyZW5jZSJ9LCJyZWNpcGllbnQiOiJjbG91ZGZsYXJlIn0","expires":"2026-11-22T10:05:00Z"}`)
	creds := make([]string, 4096)
	for i := range creds {
		seq := uint64(i + 1)
		c := payment.SessionCall{ChallengeID: "TVss0VTum9GMqfFffbT6sp1H4ReFTmPywmUY_DM3Y2Q", SessionID: "hold_bench", Seq: seq, Amount: 250, Currency: "USD", Route: "POST /v1/inference"}
		v, err := payment.FormatSessionCredential(echo, &payment.SessionPayload{Session: "hold_bench", Seq: seq, Amount: "250", MAC: payment.SessionMAC(key, &c)})
		if err != nil {
			b.Fatal(err)
		}
		creds[i] = v
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 600) // about a payment token's signing input
	sig := ed25519.Sign(priv, msg)
	m := hmac.New(sha256.New, key)
	b.ReportAllocs()
	b.ResetTimer()
	var check, verify time.Duration
	var seq uint64
	for i := range b.N {
		t0 := time.Now()
		c, err := payment.ParseSessionCredential(creds[i%len(creds)])
		if err != nil {
			b.Fatal(err)
		}
		seq++
		call := payment.SessionCall{ChallengeID: c.Challenge.ID, SessionID: c.Payload.Session, Seq: c.Payload.Seq, Amount: 250, Currency: "USD", Route: "POST /v1/inference"}
		if !payment.CheckSessionMAC(m, &call, c.Payload.MAC) {
			b.Fatal("tag does not verify")
		}
		// Fresh sequence numbers for the store (the credentials repeat).
		if _, err := store.Consume(ctx, "hold_bench", seq, 1, now); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("signature")
		}
		check += t1.Sub(t0)
		verify += time.Since(t1)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(check.Nanoseconds())/n, "check-ns/op")
	b.ReportMetric(float64(verify.Nanoseconds())/n, "ed25519-ns/op")
	b.ReportMetric(float64(check)/float64(verify), "x-baseline")
}

// BenchmarkSessionOpenClose measures a session's fixed cost (the 402, the
// session's hold and token, its first call, and its settlement: one
// redemption committing the consumed total and releasing the rest)
// against today's one-shot paid call (402, hold and token, call,
// redemption), in the same run.
func BenchmarkSessionOpenClose(b *testing.B) {
	w := newSessWorld(b, 1<<50)
	oneShot, err := payment.NewTransport(w.payer, map[string]string{w.prov.URL: e2eProvider}, budget.USD(1000),
		&payment.TransportOptions{Base: w.prov.Client().Transport, Now: w.clock.Now, SessionCalls: -1})
	if err != nil {
		b.Fatal(err)
	}
	oc := &http.Client{Transport: oneShot}
	run := func(c *http.Client) {
		resp, err := c.Get(w.prov.URL + "/v1/infer")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	ctx := context.Background()
	run(oc)
	run(w.client)
	if _, err := w.paywall.Load().CloseSessions(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var single, session time.Duration
	for range b.N {
		t0 := time.Now()
		run(oc)
		t1 := time.Now()
		w.crashAgentWith(nil) // a fresh agent: a fresh session
		run(w.client)
		if n, err := w.paywall.Load().CloseSessions(ctx); err != nil || n != 1 {
			b.Fatalf("closed %d sessions: %v", n, err)
		}
		single += t1.Sub(t0)
		session += time.Since(t1)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(single.Nanoseconds())/n, "oneshot-ns/op")
	b.ReportMetric(float64(session.Nanoseconds())/n, "open+close-ns/op")
	b.ReportMetric(float64(session)/float64(single), "x-baseline")
}

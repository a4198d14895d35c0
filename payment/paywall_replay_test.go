package payment_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// The attack of issue 10: one payment token presented on several
// challenges for the same route and price. The Paywall must serve at most
// one call per token, whatever the challenges, credentials or concurrency.

// challengeFor fetches a fresh challenge for an unpaid GET of path.
func (w *e2e) challengeFor(path string) payment.Challenge {
	w.t.Helper()
	resp, err := w.provider.Client().Get(w.provider.URL + path)
	if err != nil {
		w.t.Fatal(err)
	}
	payment.Discard(resp)
	if resp.StatusCode != http.StatusPaymentRequired {
		w.t.Fatalf("unpaid request got %d", resp.StatusCode)
	}
	cs, err := payment.ParseChallenges(resp.Header.Values("WWW-Authenticate"))
	if err != nil {
		w.t.Fatal(err)
	}
	return cs[0]
}

// mintFor mints a token for the e2e price, bound to challengeID when it is
// not empty.
func (w *e2e) mintFor(challengeID string) string {
	w.t.Helper()
	m, err := w.iss.Mint(context.Background(), issuer.MintRequest{Project: e2eProject, Provider: e2eProvider, Service: e2eService,
		MaxAmount: budget.USD(e2ePrice), ChallengeID: challengeID})
	if err != nil {
		w.t.Fatal(err)
	}
	return m.Token
}

// credentialFor answers c with token; source varies the credential's bytes.
func credentialFor(t testing.TB, c *payment.Challenge, token, source string) string {
	t.Helper()
	cred, err := payment.NewTokenCredential(c, token)
	if err != nil {
		t.Fatal(err)
	}
	cred.Source = source
	v, err := payment.FormatCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// present sends a paid GET and returns the status and problem code.
func (w *e2e) present(path, authz string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, w.provider.URL+path, nil)
	req.Header.Set("Authorization", authz)
	resp, err := w.provider.Client().Do(req)
	if err != nil {
		w.t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	var code string
	if resp.StatusCode != http.StatusOK {
		if pe := problemCode(resp.Body); pe != "" {
			code = pe
		}
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, code
}

func problemCode(r io.Reader) string {
	var pd struct{ Code string }
	b, _ := io.ReadAll(io.LimitReader(r, 1<<16))
	_ = json.Unmarshal(b, &pd)
	return pd.Code
}

func TestPaywallTokenPaysForOneCall(t *testing.T) {
	const n = 8
	t.Run("unbound token on N challenges", func(t *testing.T) {
		// A clock that moves a second per reading makes every challenge
		// differ even without a nonce, as challenges issued over a few
		// seconds do.
		var ticks atomic.Int64
		start := time.Now()
		clk := func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * time.Second) }
		w := newE2E(t, e2eConfig{paywall: &paywall.PaywallOptions{Now: clk, Logger: quiet()}})
		token := w.mintFor("")
		for i := range n {
			c := w.challengeFor("/v1/check")
			status, code := w.present("/v1/check", credentialFor(t, &c, token, ""))
			if status != http.StatusPaymentRequired || code != payment.ErrVerificationFailed.Code {
				t.Errorf("challenge %d: %d %q, want 402 %q", i, status, code, payment.ErrVerificationFailed.Code)
			}
		}
		if got := w.served.Load(); got != 0 {
			t.Fatalf("handler ran %d times for a token bound to no challenge", got)
		}
		w.wantMoney(e2ePrice, 0, 0) // the hold stays until the token expires; nothing charged
	})
	t.Run("bound token replayed on N challenges", func(t *testing.T) {
		w := newE2E(t, e2eConfig{})
		first := w.challengeFor("/v1/check")
		token := w.mintFor(first.ID)
		if status, code := w.present("/v1/check", credentialFor(t, &first, token, "")); status != http.StatusOK {
			t.Fatalf("legitimate call: %d %q", status, code)
		}
		for i := range n {
			c := w.challengeFor("/v1/check")
			if status, code := w.present("/v1/check", credentialFor(t, &c, token, "")); status != http.StatusPaymentRequired || code != payment.ErrVerificationFailed.Code {
				t.Errorf("replay %d: %d %q, want 402 %q", i, status, code, payment.ErrVerificationFailed.Code)
			}
			// The same token on its own challenge, in another credential.
			if status, code := w.present("/v1/check", credentialFor(t, &first, token, "did:example:"+strconv.Itoa(i))); status != http.StatusPaymentRequired || code != payment.ErrVerificationFailed.Code {
				t.Errorf("re-wrapped %d: %d %q, want 402 %q", i, status, code, payment.ErrVerificationFailed.Code)
			}
		}
		// The retry of the very same credential still gets its answer.
		if status, code := w.present("/v1/check", credentialFor(t, &first, token, "")); status != http.StatusOK {
			t.Errorf("retry of the same credential: %d %q", status, code)
		}
		if got := w.served.Load(); got != 1 {
			t.Fatalf("handler ran %d times for one token", got)
		}
		w.wantMoney(0, e2ePrice, e2ePrice)
	})
	t.Run("concurrent", func(t *testing.T) {
		w := newE2E(t, e2eConfig{})
		bound := w.challengeFor("/v1/check")
		token := w.mintFor(bound.ID)
		unbound := w.mintFor("")
		var authz []string
		for i := range n {
			c := w.challengeFor("/v1/check")
			authz = append(authz,
				credentialFor(t, &c, token, ""),                                 // the token on another challenge
				credentialFor(t, &bound, token, "did:example:"+strconv.Itoa(i)), // on its own, re-wrapped
				credentialFor(t, &c, unbound, ""),                               // a token bound to nothing
			)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for _, v := range authz {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, code := w.present("/v1/check", v)
				switch {
				case status == http.StatusOK:
					mu.Lock()
					ok++
					mu.Unlock()
				case status == http.StatusPaymentRequired && code == payment.ErrVerificationFailed.Code:
				default:
					t.Errorf("unexpected %d %q", status, code)
				}
			}()
		}
		wg.Wait()
		if ok != 1 || w.served.Load() != 1 {
			t.Fatalf("%d deliveries, handler ran %d times; want exactly one paid call", ok, w.served.Load())
		}
		w.wantMoney(e2ePrice, e2ePrice, e2ePrice) // the unbound token's hold stays until it expires
	})
}

// TestPaywallFreshChallenges: every 402 carries a challenge of its own
// (§5.7.7), even for the same request in the same second, so that two
// payers never compete for one challenge.
func TestPaywallFreshChallenges(t *testing.T) {
	fixed := time.Now()
	w := newE2E(t, e2eConfig{paywall: &paywall.PaywallOptions{Now: func() time.Time { return fixed }, Logger: quiet()}})
	seen := map[string]bool{}
	var cs []payment.Challenge
	for range 16 {
		c := w.challengeFor("/v1/check")
		if seen[c.ID] {
			t.Fatalf("challenge id %s issued twice", c.ID)
		}
		seen[c.ID] = true
		cs = append(cs, c)
	}
	// Two payers, each answering the challenge it received: both are served.
	for i, c := range cs[:2] {
		if status, code := w.present("/v1/check", credentialFor(t, &c, w.mintFor(c.ID), "did:example:payer-"+strconv.Itoa(i))); status != http.StatusOK {
			t.Fatalf("payer %d: %d %q", i, status, code)
		}
	}
	if w.served.Load() != 2 {
		t.Fatalf("handler ran %d times for two payments", w.served.Load())
	}
	w.wantMoney(0, 2*e2ePrice, 2*e2ePrice)
}

package payment_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/agentprov/agentprov/payment"
	"github.com/go-jose/go-jose/v4"
)

// keysDown is a KeyResolver whose keys are unreachable while down is set
// (its error says Temporary, as *authz.Error does for jwks_unavailable).
type keysDown struct {
	set     *jose.JSONWebKeySet
	down    atomic.Bool
	lookups atomic.Int64
}

type tempErr struct{}

func (tempErr) Error() string   { return "JWKS not available" }
func (tempErr) Temporary() bool { return true }

func (k *keysDown) Key(_ context.Context, kid string) (*jose.JSONWebKey, error) {
	k.lookups.Add(1)
	if k.down.Load() {
		return nil, tempErr{}
	}
	for i := range k.set.Keys {
		if k.set.Keys[i].KeyID == kid {
			return &k.set.Keys[i], nil
		}
	}
	return nil, errors.New("unknown kid")
}

// TestPaywallKeysUnavailable: while the provider cannot get the
// orchestrator's keys, a paid request is answered 503
// settlement_unavailable with Retry-After (nothing decided, the handler
// not run), not a definitive 402; the Transport retries with the same
// credential, and once the keys are back the one payment settles: one
// token minted, one call served, one charge.
func TestPaywallKeysUnavailable(t *testing.T) {
	var keys *keysDown
	w := newE2E(t, e2eConfig{resolver: func(set *jose.JSONWebKeySet) payment.KeyResolver {
		keys = &keysDown{set: set}
		return keys
	}})
	keys.down.Store(true)

	// A raw exchange first: the 503 is on the wire, not just inside the
	// Transport.
	resp, err := w.provider.Client().Get(w.provider.URL + "/v1/check?name=a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("unpaid: %d", resp.StatusCode)
	}
	// Through the Transport: its bounded retries all see the keys down.
	resp, err = w.client.Get(w.provider.URL + "/v1/check?name=a")
	if err == nil {
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("keys down: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		resp.Body.Close()
	} else {
		var pe *payment.Error
		if !errors.As(err, &pe) || pe.Code == payment.ErrVerificationFailed.Code {
			t.Errorf("keys down: %v, want a retryable failure, not verification_failed", err)
		}
	}
	if got := w.served.Load(); got != 0 {
		t.Errorf("handler ran %d times without a verified payment", got)
	}
	if keys.lookups.Load() == 0 {
		t.Fatal("the resolver was never asked")
	}

	keys.down.Store(false)
	resp, err = w.client.Get(w.provider.URL + "/v1/check?name=b")
	if err != nil {
		t.Fatalf("keys back: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || w.served.Load() != 1 {
		t.Fatalf("keys back: %d, served %d", resp.StatusCode, w.served.Load())
	}
	if held, committed := w.usage(); committed != e2ePrice {
		t.Errorf("committed %d (held %d), want one charge of %d", committed, held, e2ePrice)
	}
}

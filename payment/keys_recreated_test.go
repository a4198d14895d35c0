package payment_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/payment"
)

// authz.KeySet refetches on a failed signature, as payment asks it to.
var _ payment.KeyRefetcher = (*authz.KeySet)(nil)

// TestResolvingTokenVerifierRecreatedKid: an orchestrator that re-creates
// its signing key under the same kid (without keeping the old one) has its
// new tokens accepted after one refetch, not after the cache's max-age;
// a token signed by the dropped key is then refused.
func TestResolvingTokenVerifierRecreatedKid(t *testing.T) {
	ctx := context.Background()
	o := newRotatingOrchestrator(t)
	keys, err := authz.NewKeySet(o.srv.URL+"/jwks.json", &authz.KeySetOptions{HTTPClient: o.srv.Client(), MinRefetchInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	v, err := payment.NewResolvingTokenVerifier(rotIssuer, "acme", keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := o.mint("a")
	if _, err := v.Verify(ctx, before); err != nil {
		t.Fatal(err)
	}
	o.mu.Lock()
	o.old = nil // a re-created key: the old one is gone, the kid stays
	o.iss = nil
	o.mu.Unlock()
	o.rotate("k1")
	after := o.mint("b")
	time.Sleep(2 * time.Millisecond) // past MinRefetchInterval, inside max-age
	n := keys.Fetches()
	if _, err := v.Verify(ctx, after); err != nil {
		t.Fatalf("token of the re-created k1: %v", err)
	}
	if keys.Fetches() != n+1 {
		t.Fatalf("%d fetches for the re-created key, want 1", keys.Fetches()-n)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := v.Verify(ctx, before); !errors.Is(err, payment.ErrTokenInvalid) {
		t.Fatalf("token of the dropped key: %v", err)
	}
}

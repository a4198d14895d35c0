package payment_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
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

// TestIssuerThumbprintKid: an Issuer given no KeyID signs under the key's
// RFC 7638 thumbprint, the same kid authz derives for the same key, so one
// key handed to both roles is named once.
func TestIssuerThumbprintKid(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ledger, err := budget.NewLedger(budget.NewMemoryStore(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := issuer.NewIssuer(rotIssuer, payment.SigningKey{Key: priv}, ledger, &issuer.IssuerOptions{Rail: issuer.NewMemoryRail(nil)})
	if err != nil {
		t.Fatal(err)
	}
	want, err := payment.KeyThumbprint(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := authz.KeyThumbprint(priv); a != want {
		t.Fatalf("authz and payment thumbprints differ: %q %q", a, want)
	}
	if got := iss.JWKS().Keys[0].KeyID; got != want {
		t.Fatalf("JWKS kid %q, want the thumbprint %q", got, want)
	}
	m, err := iss.Mint(context.Background(), issuer.MintRequest{Project: "proj-1", Provider: "acme", Service: "dns", MaxAmount: budget.USD(1)})
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := strings.Cut(m.Token, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(h)
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil || hdr.Kid != want {
		t.Fatalf("token kid %q (%v), want %q", hdr.Kid, err, want)
	}
	if _, err := issuer.NewIssuer(rotIssuer, payment.SigningKey{}, ledger, &issuer.IssuerOptions{Rail: issuer.NewMemoryRail(nil)}); err == nil {
		t.Fatal("a SigningKey without key accepted")
	}
}

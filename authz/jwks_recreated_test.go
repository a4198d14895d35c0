package authz_test

import (
	"context"
	"crypto"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/clock"
)

// TestKeySetRecreatedKeySameKid: an orchestrator that re-creates its key
// under the same kid ("orch-1") is trusted again after one refetch, not
// after the cache's max-age (300 s by default); a signature that does not
// verify refetches at most once per MinRefetchInterval, so forged tokens
// cannot drive fetches.
func TestKeySetRecreatedKeySameKid(t *testing.T) {
	clk := clock.NewFake(idT0)
	newAttester := func() *authz.Attester {
		k, err := authz.GenerateSigningKey("orch-1", jose.EdDSA)
		if err != nil {
			t.Fatal(err)
		}
		a, err := authz.NewAttester(idIssuer, k, &authz.AttesterOptions{Clock: clk.Now, Lifetime: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	first, recreated, forger := newAttester(), newAttester(), newAttester()
	var serving atomic.Pointer[authz.Attester]
	serving.Store(first)
	jwks := &countingJWKS{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serving.Load().JWKSHandler().ServeHTTP(w, r) })}
	srv := httptest.NewServer(jwks)
	defer srv.Close()
	v, err := authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: idIssuer, JWKSURL: srv.URL}},
		authz.NewMemoryReplayStore(&authz.MemoryReplayStoreOptions{Clock: clk.Now}),
		&authz.VerifierOptions{Clock: clk.Now, KeySet: &authz.KeySetOptions{HTTPClient: srv.Client()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	attest := func(a *authz.Attester) string {
		tok, err := a.Attest(ctx, idRequest())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	fetches := func(want int32) {
		t.Helper()
		if got := jwks.n.Load(); got != want {
			t.Fatalf("%d JWKS requests, want %d", got, want)
		}
	}
	if _, err := v.Verify(ctx, attest(first)); err != nil {
		t.Fatal(err)
	}
	fetches(1)

	// The key is re-created under the same kid. Right after the first
	// fetch a refetch is rate-limited: the new key's token is refused.
	serving.Store(recreated)
	if _, err := v.Verify(ctx, attest(recreated)); !errors.Is(err, authz.ErrInvalidSignature) {
		t.Fatalf("re-created key inside the refetch interval: %v", err)
	}
	fetches(1)
	// Past MinRefetchInterval, well inside the cache's max-age, the failed
	// signature triggers one refetch and the token verifies.
	clk.Advance(31 * time.Second)
	if _, err := v.Verify(ctx, attest(recreated)); err != nil {
		t.Fatalf("re-created key after the refetch interval: %v", err)
	}
	fetches(2)
	if _, err := v.Verify(ctx, attest(recreated)); err != nil {
		t.Fatal(err)
	}
	fetches(2)

	// Forged signatures under the known kid: refused, one refetch per
	// interval at most.
	for range 20 {
		if _, err := v.Verify(ctx, attest(forger)); !errors.Is(err, authz.ErrInvalidSignature) {
			t.Fatalf("forged token: %v", err)
		}
	}
	fetches(2)
	clk.Advance(31 * time.Second)
	for range 20 {
		if _, err := v.Verify(ctx, attest(forger)); !errors.Is(err, authz.ErrInvalidSignature) {
			t.Fatalf("forged token: %v", err)
		}
	}
	fetches(3)
}

// TestKeySetKeyAfterFailure: the exported hook returns the newly published
// key, and ErrInvalidSignature when the refetch brings the same key.
func TestKeySetKeyAfterFailure(t *testing.T) {
	clk := clock.NewFake(idT0)
	k1, _ := authz.GenerateSigningKey("orch-1", jose.EdDSA)
	k2, _ := authz.GenerateSigningKey("orch-1", jose.EdDSA)
	a1, _ := authz.NewAttester(idIssuer, k1, nil)
	a2, _ := authz.NewAttester(idIssuer, k2, nil)
	var serving atomic.Pointer[authz.Attester]
	serving.Store(a1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serving.Load().JWKSHandler().ServeHTTP(w, r) }))
	defer srv.Close()
	ks, err := authz.NewKeySet(srv.URL, &authz.KeySetOptions{HTTPClient: srv.Client(), Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old, err := ks.Key(ctx, "orch-1")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(31 * time.Second)
	if _, err := ks.KeyAfterFailure(ctx, "orch-1", old); !errors.Is(err, authz.ErrInvalidSignature) {
		t.Fatalf("same key after refetch: %v", err)
	}
	serving.Store(a2)
	clk.Advance(31 * time.Second)
	fresh, err := ks.KeyAfterFailure(ctx, "orch-1", old)
	if err != nil {
		t.Fatal(err)
	}
	want := a2.JWKS().Keys[0]
	if got, _ := fresh.Thumbprint(cryptoSHA256); string(got) != string(mustThumb(t, &want)) {
		t.Fatal("KeyAfterFailure did not return the re-created key")
	}
}

const cryptoSHA256 = crypto.SHA256

func mustThumb(t *testing.T, k *jose.JSONWebKey) []byte {
	t.Helper()
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

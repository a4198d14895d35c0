package authz_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
)

// acceptAll is a ReplayStore that accepts every id, so that verify
// benchmarks measure the checks and the signature, not replay bookkeeping.
type acceptAll struct{}

func (acceptAll) PutIfAbsent(context.Context, string, time.Time) (bool, error) { return true, nil }

// measureBaseline times n calls of raw. Benchmarks report their cost as a
// multiple of this baseline, measured in the same run, so the figure does
// not depend on the machine.
func measureBaseline(n int, raw func()) float64 {
	raw() // warm up
	start := time.Now()
	for range n {
		raw()
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// reportRatio reports the benchmark's cost over the baseline. The baseline
// is measured again after the loop and the smaller figure kept, which
// damps noise from other processes on a shared machine.
func reportRatio(b *testing.B, baseNs float64, raw func()) {
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	baseNs = min(baseNs, measureBaseline(500, raw))
	b.ReportMetric(baseNs, "raw-ns/op")
	b.ReportMetric(perOp/baseNs, "x-raw")
}

// rawSigner returns raw sign and verify functions over the signing input
// of tok, with the same key: the floor an attestation cannot go below.
func rawCrypto(b *testing.B, key authz.SigningKey, tok string) (sign, verify func()) {
	input := []byte(tok[:strings.LastIndexByte(tok, '.')])
	switch k := key.Key.(type) {
	case ed25519.PrivateKey:
		sig := ed25519.Sign(k, input)
		pub := k.Public().(ed25519.PublicKey)
		return func() { ed25519.Sign(k, input) }, func() {
			if !ed25519.Verify(pub, input, sig) {
				b.Fatal("raw verify failed")
			}
		}
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(input)
		sig, _ := ecdsa.SignASN1(rand.Reader, k, h[:])
		return func() {
				h := sha256.Sum256(input)
				_, _ = ecdsa.SignASN1(rand.Reader, k, h[:])
			}, func() {
				h := sha256.Sum256(input)
				if !ecdsa.VerifyASN1(&k.PublicKey, h[:], sig) {
					b.Fatal("raw verify failed")
				}
			}
	}
	b.Fatalf("unexpected key %T", key.Key)
	return nil, nil
}

// BenchmarkAttest measures Attest against raw signing of the same bytes.
func BenchmarkAttest(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256} {
		b.Run(string(alg), func(b *testing.B) {
			e := newIDEnv(b, alg)
			ctx := context.Background()
			req := idRequest()
			rawSign, _ := rawCrypto(b, e.key, e.attest(b, req))
			base := measureBaseline(500, rawSign)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.att.Attest(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			reportRatio(b, base, rawSign)
		})
	}
}

// BenchmarkVerify measures Verify (every check, with a replay store that
// accepts all) against raw signature verification of the same bytes.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256} {
		b.Run(string(alg), func(b *testing.B) {
			e := newIDEnv(b, alg)
			ctx := context.Background()
			tok := e.attest(b, idRequest())
			v, err := authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: idIssuer, Keys: e.att.JWKS()}}, acceptAll{},
				&authz.VerifierOptions{Clock: e.clock.Now})
			if err != nil {
				b.Fatal(err)
			}
			_, rawVerify := rawCrypto(b, e.key, tok)
			base := measureBaseline(500, rawVerify)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
			reportRatio(b, base, rawVerify)
		})
	}
}

// BenchmarkVerifyMemoryReplay verifies distinct pre-signed tokens through
// the in-memory replay store, as a provider does; the ratio is against the
// same verification with the accept-all store.
func BenchmarkVerifyMemoryReplay(b *testing.B) {
	e := newIDEnv(b, jose.EdDSA)
	ctx := context.Background()
	const pool = 2000
	toks := make([]string, pool)
	for i := range toks {
		toks[i] = e.attest(b, idRequest())
	}
	trust := []authz.TrustedIssuer{{Issuer: idIssuer, Keys: e.att.JWKS()}}
	noReplay, _ := authz.NewVerifier(idAudience, trust, acceptAll{}, &authz.VerifierOptions{Clock: e.clock.Now})
	i := 0
	base := measureBaseline(500, func() {
		if _, err := noReplay.Verify(ctx, toks[i%pool]); err != nil {
			b.Fatal(err)
		}
		i++
	})
	var v *authz.Verifier
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if n%pool == 0 { // a fresh store once the pool is used up
			v, _ = authz.NewVerifier(idAudience, trust, authz.NewMemoryReplayStore(nil), &authz.VerifierOptions{Clock: e.clock.Now})
		}
		if _, err := v.Verify(ctx, toks[n%pool]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(base, "noreplay-ns/op")
	b.ReportMetric(perOp/base, "x-noreplay")
}

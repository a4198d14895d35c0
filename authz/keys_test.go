package authz_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
)

// kmsSigner stands in for a KMS-held key: it exposes only crypto.Signer,
// so the attester cannot reach the private key and must use the opaque
// signer adapter.
type kmsSigner struct {
	inner crypto.Signer
	calls atomic.Int32
}

func (k *kmsSigner) Public() crypto.PublicKey { return k.inner.Public() }

func (k *kmsSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.calls.Add(1)
	return k.inner.Sign(r, digest, opts)
}

func TestKMSSigner(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.ES384} {
		t.Run(string(alg), func(t *testing.T) {
			raw, err := authz.GenerateSigningKey("kms-1", alg)
			if err != nil {
				t.Fatal(err)
			}
			kms := &kmsSigner{inner: raw.Key.(crypto.Signer)}
			e := newIDEnv(t, jose.EdDSA)
			att, err := authz.NewAttester(idIssuer, authz.SigningKey{KeyID: "kms-1", Algorithm: alg, Key: kms}, &authz.AttesterOptions{Clock: e.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			v, err := authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: idIssuer, Keys: att.JWKS()}}, e.replay,
				&authz.VerifierOptions{Clock: e.clock.Now, Algorithms: []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.ES384}})
			if err != nil {
				t.Fatal(err)
			}
			// Enough signatures that an ECDSA r or s with leading zero
			// bytes turns up: the DER to fixed-width conversion must pad.
			for i := range 64 {
				tok, err := att.Attest(context.Background(), idRequest())
				if err != nil {
					t.Fatalf("Attest #%d: %v", i, err)
				}
				if _, err := v.Verify(context.Background(), tok); err != nil {
					t.Fatalf("Verify #%d: %v", i, err)
				}
			}
			if kms.calls.Load() != 64 {
				t.Fatalf("KMS signer called %d times, want 64", kms.calls.Load())
			}
		})
	}
}

func TestKMSSignerMustFitAlgorithm(t *testing.T) {
	raw, _ := authz.GenerateSigningKey("k", jose.ES256)
	kms := &kmsSigner{inner: raw.Key.(*ecdsa.PrivateKey)}
	if _, err := authz.NewAttester(idIssuer, authz.SigningKey{KeyID: "k", Algorithm: jose.EdDSA, Key: kms}, nil); err == nil {
		t.Fatal("ECDSA signer accepted for EdDSA")
	}
	if _, err := authz.NewAttester(idIssuer, authz.SigningKey{KeyID: "k", Algorithm: jose.ES384, Key: kms}, nil); err == nil {
		t.Fatal("P-256 signer accepted for ES384")
	}
}

func TestSigningKeyNeverPrintsMaterial(t *testing.T) {
	k, _ := authz.GenerateSigningKey("k1", jose.EdDSA)
	priv := k.Key.(ed25519.PrivateKey)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, k)
		if strings.Contains(out, hex.EncodeToString(priv[:8])) || strings.Contains(out, fmt.Sprint([]byte(priv[:4]))[1:8]) {
			t.Fatalf("%s printed key material: %s", format, out)
		}
		if !strings.Contains(out, "k1") {
			t.Fatalf("%s lost the kid: %s", format, out)
		}
	}
}

func TestKeyRotationOnAttester(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	k2, _ := authz.GenerateSigningKey("k2", jose.ES256)
	if err := e.att.AddKey(k2); err != nil {
		t.Fatal(err)
	}
	if err := e.att.AddKey(k2); err == nil {
		t.Fatal("duplicate kid accepted")
	}
	if got := e.att.ActiveKeyID(); got != "k1" {
		t.Fatalf("AddKey changed the active key to %s", got)
	}
	if err := e.att.SetActiveKey("nope"); err == nil {
		t.Fatal("SetActiveKey accepted an unknown kid")
	}
	if err := e.att.SetActiveKey("k2"); err != nil {
		t.Fatal(err)
	}
	if got := tokenHeader(t, e.attest(t, idRequest()))["kid"]; got != "k2" {
		t.Fatalf("token signed with %v after rotation", got)
	}
	if err := e.att.RemoveKey("k2"); err == nil {
		t.Fatal("active key removed")
	}
	if err := e.att.RemoveKey("k1"); err != nil {
		t.Fatal(err)
	}
	set := e.att.JWKS()
	if len(set.Keys) != 1 || set.Keys[0].KeyID != "k2" {
		t.Fatalf("JWKS after removal = %v", set.Keys)
	}
}

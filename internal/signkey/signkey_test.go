package signkey_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/internal/keyid"
	"github.com/agentprov/agentprov/internal/signkey"
)

func TestResolve(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	for _, tc := range []struct {
		k       signkey.Key
		allowed []jose.SignatureAlgorithm
		alg     jose.SignatureAlgorithm
		err     string
	}{
		{k: signkey.Key{Key: ed}, alg: jose.EdDSA},
		{k: signkey.Key{Key: p256}, alg: jose.ES256},
		{k: signkey.Key{Key: p384}, alg: jose.ES384},
		{k: signkey.Key{Key: p384}, allowed: []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}, err: "not allowed"},
		{k: signkey.Key{Key: ed, Algorithm: jose.ES256}, err: "does not fit"},
		{k: signkey.Key{Key: p224}, err: "P-256 or P-384"},
		{k: signkey.Key{}, err: "nil"},
	} {
		r, err := tc.k.Resolve(tc.allowed)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err %v, want %q", tc.k, err, tc.err)
			}
			continue
		}
		if err != nil || r.Algorithm != tc.alg {
			t.Errorf("%v: %v %v", tc.k, r.Algorithm, err)
			continue
		}
		if want, _ := keyid.Thumbprint(tc.k.Key); r.KeyID != want {
			t.Errorf("kid %q, want thumbprint %q", r.KeyID, want)
		}
	}
	if r, _ := (signkey.Key{KeyID: "mine", Key: ed}).Resolve(nil); r.KeyID != "mine" {
		t.Errorf("explicit kid replaced: %q", r.KeyID)
	}
}

func TestRedacted(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	k := signkey.Key{KeyID: "k1", Key: ed}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		if got := fmt.Sprintf(verb, k); got != `SigningKey{kid="k1" alg=EdDSA key=[redacted]}` {
			t.Errorf("%s printed %s", verb, got)
		}
	}
}

func ExampleKey_Resolve() {
	k := signkey.Key{Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}
	r, err := k.Resolve(nil)
	fmt.Println(r.Algorithm, len(r.KeyID), err)
	// Output: EdDSA 43 <nil>
}

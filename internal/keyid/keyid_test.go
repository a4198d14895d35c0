package keyid_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/internal/keyid"
)

// TestThumbprintRFC7638Vector checks the RFC 8037 §A.3 Ed25519 thumbprint
// vector, for the public key, the private key and a JWK holding it.
func TestThumbprintRFC7638Vector(t *testing.T) {
	const x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	const want = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
	pub, err := base64.RawURLEncoding.DecodeString(x)
	if err != nil {
		t.Fatal(err)
	}
	got, err := keyid.Thumbprint(ed25519.PublicKey(pub))
	if err != nil || got != want {
		t.Fatalf("Thumbprint = %q, %v; want %q", got, err, want)
	}
	seed, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	if got, err := keyid.Thumbprint(ed25519.NewKeyFromSeed(seed)); err != nil || got != want {
		t.Fatalf("Thumbprint(private) = %q, %v; want %q", got, err, want)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal([]byte(`{"kty":"OKP","crv":"Ed25519","x":"`+x+`"}`), &jwk); err != nil {
		t.Fatal(err)
	}
	if got, err := keyid.Thumbprint(jwk.Key); err != nil || got != want {
		t.Fatalf("Thumbprint(jwk.Key) = %q, %v", got, err)
	}
	if _, err := keyid.Thumbprint(nil); err == nil {
		t.Fatal("nil key accepted")
	}
}

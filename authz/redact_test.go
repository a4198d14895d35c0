package authz_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/vault"
)

// %v, %+v and %#v of the types that hold keys or secrets never print them:
// fmt does not reach the redacting methods of unexported fields.
func TestFormatRedactsSecrets(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	att, err := authz.NewAttester("https://o.example", authz.SigningKey{KeyID: "k", Algorithm: jose.EdDSA, Key: priv}, nil)
	if err != nil {
		t.Fatal(err)
	}
	vaultKey := []byte("0123456789abcdef0123456789abcdef")
	enc, err := vault.NewEncryptedVaultStore(vault.NewMemoryVaultStore(), map[string][]byte{"v1": vaultKey}, "v1")
	if err != nil {
		t.Fatal(err)
	}
	vlt, err := vault.NewVault(enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := vlt.Put(context.Background(), vault.Credential{Project: "p", Provider: "acme", Service: "dns", AccessToken: "SUPERSECRETTOKEN"}); err != nil {
		t.Fatal(err)
	}
	mem := vault.NewMemoryVaultStore()
	v2, _ := vault.NewVault(mem, nil)
	_ = v2.Put(context.Background(), vault.Credential{Project: "p", Provider: "acme", Service: "dns", AccessToken: "SUPERSECRETTOKEN"})
	tokens := provision.NewMemoryTokenStore()
	device := authz.DeviceAuthorizationResponse{DeviceCode: "SUPERSECRETDEVICECODE", UserCode: "WDJB-MJHT", VerificationURI: "https://acme.example/device"}
	if s := fmt.Sprint(device); !strings.Contains(s, "WDJB-MJHT") {
		t.Errorf("device response lost its user code: %s", s)
	}
	bad := []string{"SUPERSECRET", fmt.Sprint([]byte(priv))[:40], fmt.Sprint(vaultKey)[:40]}
	for name, x := range map[string]any{"attester": att, "encrypted store": enc, "vault": vlt, "memory vault": mem, "tokens": tokens,
		"device response": device, "device response pointer": &device} {
		for _, verb := range []string{"%v", "%+v", "%#v"} {
			s := fmt.Sprintf(verb, x)
			for _, b := range bad {
				if strings.Contains(s, b) {
					t.Errorf("%s %s leaks %.20q: %.300s", name, verb, b, s)
				}
			}
		}
	}
}

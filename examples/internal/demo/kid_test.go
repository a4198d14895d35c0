package demo

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/agentprov/agentprov/authz"
)

// TestOrchestratorKidIsThumbprint: the demo orchestrator's one key signs
// attestations and payment tokens under its RFC 7638 thumbprint, so a
// re-created key never reuses an old kid (issue 12).
func TestOrchestratorKidIsThumbprint(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	o, err := NewOrchestrator(OrchestratorConfig{Issuer: "http://127.0.0.1:1", Key: key,
		User: User{ID: "u", Email: "u@example.com"}, PairwiseSecret: bytes.Repeat([]byte{1}, 32), VaultKey: bytes.Repeat([]byte{2}, 32), VaultKeyID: "v"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := authz.KeyThumbprint(key)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Attester.ActiveKeyID(); got != want {
		t.Errorf("attestation kid %q, want the thumbprint %q", got, want)
	}
	if got := o.Issuer.JWKS().Keys[0].KeyID; got != want {
		t.Errorf("payment kid %q, want the thumbprint %q", got, want)
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, ed25519.SeedSize))
	if k2, _ := authz.KeyThumbprint(other); k2 == want {
		t.Error("two keys got one kid")
	}
}

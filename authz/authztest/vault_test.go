package authztest_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/vault"
)

func TestEncryptedMemoryVaultViaSuite(t *testing.T) {
	authztest.RunVaultStore(t, func(ctx context.Context, t *testing.T) (*authztest.VaultHarness, error) {
		s, err := vault.NewEncryptedVaultStore(vault.NewMemoryVaultStore(), map[string][]byte{"k": bytes.Repeat([]byte{1}, 32)}, "k")
		if err != nil {
			return nil, err
		}
		return &authztest.VaultHarness{Store: s}, nil
	})
}

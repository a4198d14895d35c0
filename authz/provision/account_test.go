package provision_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/provision"
)

func TestMemoryAccountStore(t *testing.T) {
	authztest.RunAccountStore(t, func(ctx context.Context, t *testing.T) (*authztest.AccountHarness, error) {
		s := provision.NewMemoryAccountStore()
		return &authztest.AccountHarness{
			Store: s,
			Seed:  s.Seed,
		}, nil
	})
}

package authz_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/authztest"
)

func TestMemoryAccountStore(t *testing.T) {
	authztest.RunAccountStore(t, func(ctx context.Context, t *testing.T) (*authztest.AccountHarness, error) {
		s := authz.NewMemoryAccountStore()
		return &authztest.AccountHarness{
			Store: s,
			Seed:  s.Seed,
		}, nil
	})
}

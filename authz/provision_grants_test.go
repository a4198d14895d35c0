package authz_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/authztest"
)

func TestMemoryGrantStore(t *testing.T) {
	authztest.RunGrantStore(t, func(ctx context.Context, t *testing.T) (*authztest.GrantHarness, error) {
		return &authztest.GrantHarness{Store: authz.NewMemoryGrantStore(nil)}, nil
	})
}

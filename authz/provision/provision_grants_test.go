package provision_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/provision"
)

func TestMemoryGrantStore(t *testing.T) {
	authztest.RunGrantStore(t, func(ctx context.Context, t *testing.T) (*authztest.GrantHarness, error) {
		return &authztest.GrantHarness{Store: provision.NewMemoryGrantStore(nil)}, nil
	})
}

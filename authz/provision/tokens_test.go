package provision_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/provision"
)

func TestMemoryTokenStore(t *testing.T) {
	authztest.RunTokenStore(t, func(ctx context.Context, t *testing.T) (*authztest.TokenHarness, error) {
		return &authztest.TokenHarness{Store: provision.NewMemoryTokenStore()}, nil
	})
}

func TestTokenHashRoundTrip(t *testing.T) {
	h := authz.HashToken("apt_secret")
	got, err := authz.ParseTokenHash(h.String())
	if err != nil || got != h {
		t.Fatalf("ParseTokenHash(%s) = %v, %v", h, got, err)
	}
	for _, bad := range []string{"", "abc", h.String() + "A", "!!!!"} {
		if _, err := authz.ParseTokenHash(bad); err == nil {
			t.Errorf("ParseTokenHash(%q) accepted", bad)
		}
	}
}

package authztest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/authz/vault"
)

// Each example below is the whole hook a store implementation writes: a
// harness maker handing the suite a fresh store, passed to the suite from
// one test function. Replace the in-memory constructor with your own
// store's (and set Reopen when your data survives a restart). The harness
// makers do not use t, so the examples can call them to show what they
// return; the suites themselves need a real *testing.T and run from a test.

func ExampleRunAccountStore() {
	mk := func(ctx context.Context, t *testing.T) (*authztest.AccountHarness, error) {
		s := provision.NewMemoryAccountStore()
		return &authztest.AccountHarness{Store: s, Seed: s.Seed}, nil
	}
	// In your store's _test.go file:
	testAccountStore := func(t *testing.T) { authztest.RunAccountStore(t, mk) }
	_ = testAccountStore

	h, err := mk(context.Background(), nil)
	fmt.Println(h.Store != nil, h.Seed != nil, err)
	// Output: true true <nil>
}

func ExampleRunTokenStore() {
	mk := func(ctx context.Context, t *testing.T) (*authztest.TokenHarness, error) {
		return &authztest.TokenHarness{Store: provision.NewMemoryTokenStore()}, nil
	}
	testTokenStore := func(t *testing.T) { authztest.RunTokenStore(t, mk) }
	_ = testTokenStore

	h, err := mk(context.Background(), nil)
	fmt.Println(h.Store != nil, err)
	// Output: true <nil>
}

func ExampleRunGrantStore() {
	mk := func(ctx context.Context, t *testing.T) (*authztest.GrantHarness, error) {
		return &authztest.GrantHarness{Store: provision.NewMemoryGrantStore(nil)}, nil
	}
	testGrantStore := func(t *testing.T) { authztest.RunGrantStore(t, mk) }
	_ = testGrantStore

	h, err := mk(context.Background(), nil)
	fmt.Println(h.Store != nil, err)
	// Output: true <nil>
}

func ExampleRunReplayStore() {
	mk := func(ctx context.Context, t *testing.T) (*authztest.ReplayHarness, error) {
		s := authz.NewMemoryReplayStore(nil)
		// The in-memory store "reopens" as itself: the durability checks
		// then hold trivially. A SQL store opens a new handle here.
		return &authztest.ReplayHarness{
			Store:  s,
			Reopen: func(context.Context) (authz.ReplayStore, error) { return s, nil },
		}, nil
	}
	testReplayStore := func(t *testing.T) { authztest.RunReplayStore(t, mk) }
	_ = testReplayStore

	h, err := mk(context.Background(), nil)
	fmt.Println(h.Store != nil, h.Reopen != nil, err)
	// Output: true true <nil>
}

func ExampleRunVaultStore() {
	mk := func(ctx context.Context, t *testing.T) (*authztest.VaultHarness, error) {
		return &authztest.VaultHarness{Store: vault.NewMemoryVaultStore()}, nil
	}
	testVaultStore := func(t *testing.T) { authztest.RunVaultStore(t, mk) }
	_ = testVaultStore

	h, err := mk(context.Background(), nil)
	fmt.Println(h.Store != nil, err)
	// Output: true <nil>
}

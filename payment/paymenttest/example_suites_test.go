package paymenttest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paymenttest"
	"github.com/agentprov/agentprov/payment/paywall"
)

// Each example below is the whole hook a store implementation writes: a
// harness maker handing the suite a fresh store, passed to the suite from
// one test function. Replace the in-memory constructor with your own
// store's, and set Reopen when your data survives a restart. The suites
// need a real *testing.T, so they run from a test, not from the example.

func ExampleRunRedemptionStore() {
	mk := func(ctx context.Context, t *testing.T) (*paymenttest.RedemptionHarness, error) {
		return &paymenttest.RedemptionHarness{Store: issuer.NewMemoryRedemptionStore()}, nil
	}
	// In your store's _test.go file:
	testRedemptionStore := func(t *testing.T) { paymenttest.RunRedemptionStore(t, mk) }
	_ = testRedemptionStore

	h, err := mk(context.Background(), nil)
	fmt.Println(h.Store != nil, err)
	// Output: true <nil>
}

func ExampleRunIdempotencyStore() {
	mk := func(ctx context.Context, t *testing.T) (*paymenttest.IdempotencyHarness, error) {
		return &paymenttest.IdempotencyHarness{Store: payment.NewMemoryIdempotencyStore()}, nil
	}
	testIdempotencyStore := func(t *testing.T) { paymenttest.RunIdempotencyStore(t, mk) }
	_ = testIdempotencyStore

	h, err := mk(context.Background(), nil)
	fmt.Println(h.Store != nil, err)
	// Output: true <nil>
}

func ExampleRunChallengeStore() {
	mk := func(ctx context.Context, t *testing.T) (*paymenttest.ChallengeHarness, error) {
		return &paymenttest.ChallengeHarness{Store: paywall.NewMemoryChallengeStore(nil)}, nil
	}
	testChallengeStore := func(t *testing.T) { paymenttest.RunChallengeStore(t, mk) }
	_ = testChallengeStore

	h, err := mk(context.Background(), nil)
	fmt.Println(h.Store != nil, err)
	// Output: true <nil>
}

func ExampleRunSessionStore() {
	mk := func(ctx context.Context, t *testing.T) (*paymenttest.SessionHarness, error) {
		return &paymenttest.SessionHarness{Store: paywall.NewMemorySessionStore()}, nil
	}
	testSessionStore := func(t *testing.T) { paymenttest.RunSessionStore(t, mk) }
	_ = testSessionStore

	h, err := mk(context.Background(), nil)
	fmt.Println(h.Store != nil, err)
	// Output: true <nil>
}

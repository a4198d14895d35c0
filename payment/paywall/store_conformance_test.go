package paywall_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/payment/paymenttest"
	"github.com/agentprov/agentprov/payment/paywall"
)

func TestMemoryChallengeStoreConformance(t *testing.T) {
	paymenttest.RunChallengeStore(t, func(context.Context, *testing.T) (*paymenttest.ChallengeHarness, error) {
		return &paymenttest.ChallengeHarness{Store: paywall.NewMemoryChallengeStore(nil)}, nil
	})
}

func TestMemorySessionStoreConformance(t *testing.T) {
	paymenttest.RunSessionStore(t, func(context.Context, *testing.T) (*paymenttest.SessionHarness, error) {
		return &paymenttest.SessionHarness{Store: paywall.NewMemorySessionStore()}, nil
	})
}

package payment_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paymenttest"
	"github.com/agentprov/agentprov/payment/paywall"
)

func TestMemoryRedemptionStoreConformance(t *testing.T) {
	paymenttest.RunRedemptionStore(t, func(context.Context, *testing.T) (*paymenttest.RedemptionHarness, error) {
		return &paymenttest.RedemptionHarness{Store: issuer.NewMemoryRedemptionStore()}, nil
	})
}

func TestMemoryIdempotencyStoreConformance(t *testing.T) {
	paymenttest.RunIdempotencyStore(t, func(context.Context, *testing.T) (*paymenttest.IdempotencyHarness, error) {
		return &paymenttest.IdempotencyHarness{Store: payment.NewMemoryIdempotencyStore()}, nil
	})
}

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

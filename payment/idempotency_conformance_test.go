package payment_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paymenttest"
)

func TestMemoryIdempotencyStoreConformance(t *testing.T) {
	paymenttest.RunIdempotencyStore(t, func(context.Context, *testing.T) (*paymenttest.IdempotencyHarness, error) {
		return &paymenttest.IdempotencyHarness{Store: payment.NewMemoryIdempotencyStore()}, nil
	})
}

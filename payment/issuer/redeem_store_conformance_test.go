package issuer_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paymenttest"
)

func TestMemoryRedemptionStoreConformance(t *testing.T) {
	paymenttest.RunRedemptionStore(t, func(context.Context, *testing.T) (*paymenttest.RedemptionHarness, error) {
		return &paymenttest.RedemptionHarness{Store: issuer.NewMemoryRedemptionStore()}, nil
	})
}

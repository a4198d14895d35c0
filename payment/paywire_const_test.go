package payment_test

import (
	"testing"

	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
)

// internal/paywire repeats two of payment's constants (it cannot import
// payment); they must agree.
func TestPaywireConstants(t *testing.T) {
	if paywire.DefaultLeeway != payment.DefaultLeeway {
		t.Errorf("paywire.DefaultLeeway %v, payment.DefaultLeeway %v", paywire.DefaultLeeway, payment.DefaultLeeway)
	}
	if paywire.MinSessionSecretBytes != payment.MinSessionSecretBytes {
		t.Errorf("paywire.MinSessionSecretBytes %d, payment.MinSessionSecretBytes %d", paywire.MinSessionSecretBytes, payment.MinSessionSecretBytes)
	}
}

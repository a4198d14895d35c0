package paywire

import (
	"errors"
	"time"
)

// OrDefault is d, or def when d is not positive.
func OrDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Temporary reports whether err, from a payment.KeyResolver, says the keys cannot
// be had now (see payment.KeyResolver).
func Temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// MaxRedemptionResponseSize bounds what the Redeemer reads back.
const MaxRedemptionResponseSize = 64 << 10

// ReleaseSuffix ends the path of the release operation (§5.2.3).
const ReleaseSuffix = "/release"

// MinSessionSecretBytes is payment.MinSessionSecretBytes (payment's tests
// check that the two agree).
const MinSessionSecretBytes = 32

// CheckSessionSecret refuses a session secret shorter than MinSessionSecretBytes.
func CheckSessionSecret(s []byte) error {
	if len(s) < MinSessionSecretBytes {
		return errors.New("payment: session secret must be at least 32 bytes")
	}
	return nil
}

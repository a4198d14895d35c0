package paywall_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paywall"
)

func TestMemoryChallengeStoreBounded(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s := paywall.NewMemoryChallengeStore(&paywall.MemoryChallengeStoreOptions{MaxRecords: 2, Now: func() time.Time { return now }})
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, ok, err := s.Claim(ctx, paywall.ChallengeRecord{ID: id, State: paywall.ChallengePending, RetainUntil: now.Add(time.Minute)}); err != nil || !ok {
			t.Fatal(err)
		}
	}
	// Full of live records: fail closed rather than forget a live claim.
	if _, _, err := s.Claim(ctx, paywall.ChallengeRecord{ID: "c", RetainUntil: now.Add(time.Minute)}); !errors.Is(err, payment.ErrStore) {
		t.Fatalf("err = %v, want store_error", err)
	}
	now = now.Add(2 * time.Minute)
	if _, ok, err := s.Claim(ctx, paywall.ChallengeRecord{ID: "c", RetainUntil: now.Add(time.Minute)}); err != nil || !ok {
		t.Fatalf("after expiry: %v %v", ok, err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, paywall.ErrChallengeNotFound) {
		t.Fatal("expired record kept")
	}
}

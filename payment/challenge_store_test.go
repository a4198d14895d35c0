package payment

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMemoryChallengeStoreBounded(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s := NewMemoryChallengeStore(&MemoryChallengeStoreOptions{MaxRecords: 2, Now: func() time.Time { return now }})
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, ok, err := s.Claim(ctx, ChallengeRecord{ID: id, State: ChallengePending, RetainUntil: now.Add(time.Minute)}); err != nil || !ok {
			t.Fatal(err)
		}
	}
	// Full of live records: fail closed rather than forget a live claim.
	if _, _, err := s.Claim(ctx, ChallengeRecord{ID: "c", RetainUntil: now.Add(time.Minute)}); !errors.Is(err, ErrStore) {
		t.Fatalf("err = %v, want store_error", err)
	}
	now = now.Add(2 * time.Minute)
	if _, ok, err := s.Claim(ctx, ChallengeRecord{ID: "c", RetainUntil: now.Add(time.Minute)}); err != nil || !ok {
		t.Fatalf("after expiry: %v %v", ok, err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrChallengeNotFound) {
		t.Fatal("expired record kept")
	}
}

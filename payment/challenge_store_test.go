package payment

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

// runChallengeStoreSuite is the contract every ChallengeStore meets. It
// lives here until the shared paymenttest package exports it for other
// implementations.
func runChallengeStoreSuite(t *testing.T, mk func(t *testing.T) ChallengeStore) {
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	t.Run("claim is put-if-absent", func(t *testing.T) {
		s := mk(t)
		rec := ChallengeRecord{ID: "c1", Fingerprint: "f1", State: ChallengePending, RetainUntil: until}
		got, ok, err := s.Claim(ctx, rec)
		if err != nil || !ok || got.ID != "c1" {
			t.Fatalf("first claim: %+v %v %v", got, ok, err)
		}
		got, ok, err = s.Claim(ctx, ChallengeRecord{ID: "c1", Fingerprint: "f2", State: ChallengePending, RetainUntil: until})
		if err != nil || ok || got.Fingerprint != "f1" {
			t.Fatalf("second claim: %+v %v %v", got, ok, err)
		}
	})
	t.Run("one winner under concurrency", func(t *testing.T) {
		s := mk(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, ok, err := s.Claim(ctx, ChallengeRecord{ID: "c", Fingerprint: string(rune('a' + i)), State: ChallengePending, RetainUntil: until})
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d claims won", wins)
		}
	})
	t.Run("get", func(t *testing.T) {
		s := mk(t)
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrChallengeNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("update is compare-and-set", func(t *testing.T) {
		s := mk(t)
		rec := ChallengeRecord{ID: "c", Fingerprint: "f", State: ChallengePending, RetainUntil: until}
		if _, _, err := s.Claim(ctx, rec); err != nil {
			t.Fatal(err)
		}
		served := rec
		served.State = ChallengeServed
		served.Response = &StoredResponse{Status: 200, Header: http.Header{"X": {"1"}}, Body: []byte("ok")}
		if err := s.Update(ctx, ChallengeServed, served); !errors.Is(err, ErrConflict) {
			t.Fatalf("update from the wrong state: %v", err)
		}
		other := served
		other.Fingerprint = "g"
		if err := s.Update(ctx, ChallengePending, other); !errors.Is(err, ErrConflict) {
			t.Fatalf("update with another fingerprint: %v", err)
		}
		if err := s.Update(ctx, ChallengePending, served); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, ChallengePending, served); !errors.Is(err, ErrConflict) {
			t.Fatalf("second update from pending: %v", err)
		}
		missing := served
		missing.ID = "zz"
		if err := s.Update(ctx, ChallengePending, missing); !errors.Is(err, ErrChallengeNotFound) {
			t.Fatalf("update of an unknown id: %v", err)
		}
		got, err := s.Get(ctx, "c")
		if err != nil || got.State != ChallengeServed || string(got.Response.Body) != "ok" || got.Response.Header.Get("X") != "1" {
			t.Fatalf("get after update: %+v %v", got, err)
		}
		// Records are values: changing what was returned changes nothing stored.
		got.Response.Body[0] = 'X'
		got.Response.Header.Set("X", "2")
		again, _ := s.Get(ctx, "c")
		if string(again.Response.Body) != "ok" || again.Response.Header.Get("X") != "1" {
			t.Fatal("store shares memory with its callers")
		}
	})
}

func TestMemoryChallengeStore(t *testing.T) {
	runChallengeStoreSuite(t, func(*testing.T) ChallengeStore { return NewMemoryChallengeStore(nil) })
}

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

// Package paymenttest holds the conformance suites that every
// implementation of issuer.RedemptionStore, payment.IdempotencyStore and
// paywall.ChallengeStore must pass. An implementation's test calls
// RunRedemptionStore, RunIdempotencyStore or RunChallengeStore with a
// harness maker that hands out fresh, empty stores (and, when the store is
// durable, a way to reopen the same data):
//
//	func TestConformance(t *testing.T) {
//		paymenttest.RunRedemptionStore(t, func(ctx context.Context, t *testing.T) (*paymenttest.RedemptionHarness, error) {
//			return &paymenttest.RedemptionHarness{Store: issuer.NewMemoryRedemptionStore()}, nil
//		})
//	}
//
// The suites check the atomic primitives the Issuer, the Idempotent
// middleware and the Paywall rely on: put-if-absent with exactly one winner
// among concurrent callers, compare-and-set, lease and retention expiry,
// ordering of due records, and durability across a reopen.
//
// # Concurrency
//
// Subtests run in parallel; a harness maker must be safe for concurrent
// use and give each call its own isolated store.
//
// # Roles
//
// Whoever implements a payment store: redemption and idempotency stores on
// the orchestrator side, challenge stores on the provider side. Each Run
// function has an example with the harness a store's test writes.
package paymenttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

// RedemptionHarness is one fresh RedemptionStore.
type RedemptionHarness struct {
	Store issuer.RedemptionStore
	// Reopen, if set, returns a new store over the same data, as after a
	// process restart; the suite then checks durability.
	Reopen func(ctx context.Context) (issuer.RedemptionStore, error)
}

// RedemptionHarnessMaker returns a harness over an empty store. Cleanup is
// registered on t.
type RedemptionHarnessMaker func(ctx context.Context, t *testing.T) (*RedemptionHarness, error)

// IdempotencyHarness is one fresh IdempotencyStore.
type IdempotencyHarness struct {
	Store  payment.IdempotencyStore
	Reopen func(ctx context.Context) (payment.IdempotencyStore, error)
}

// IdempotencyHarnessMaker returns a harness over an empty store.
type IdempotencyHarnessMaker func(ctx context.Context, t *testing.T) (*IdempotencyHarness, error)

// harness calls a harness maker of any of the suites, failing t on error.
func harness[H any, M ~func(context.Context, *testing.T) (H, error)](t *testing.T, hm M) H {
	t.Helper()
	h, err := hm(context.Background(), t)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return h
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

var timeEq = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

// sample returns a record with every field set (times at microsecond
// precision, which every SQL store keeps).
func sample(id string) issuer.Redemption {
	return issuer.Redemption{
		HoldID: id, State: payment.StateSettling, Version: 1,
		Provider: "cloudflare", Service: "cloudflare/registrar:domain", Project: "proj-1",
		MaxAmount: budget.USD(2000), IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute),
		ChallengeID: "ch_1", MintKey: "mint-" + id,
		Amount: budget.USD(1299), RedeemedAt: t0.Add(time.Minute), Receipt: "a.b.c", Reference: "ref-1",
		Attempts: 2, NextAttemptAt: t0.Add(90*time.Second + 123*time.Microsecond), LastError: "timeout",
		Reason: "", UpdatedAt: t0.Add(time.Minute),
	}
}

// RunRedemptionStore runs the RedemptionStore conformance suite.
func RunRedemptionStore(t *testing.T, hm RedemptionHarnessMaker) {
	ctx := context.Background()
	t.Run("CreateGet", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		r := sample("h1")
		got, created, err := s.Create(ctx, r)
		if err != nil || !created {
			t.Fatalf("Create = %v, %v", created, err)
		}
		if d := cmp.Diff(r, got, timeEq); d != "" {
			t.Errorf("Create returned (-want +got):\n%s", d)
		}
		got, err = s.Get(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(r, got, timeEq); d != "" {
			t.Errorf("Get (-want +got):\n%s", d)
		}
		if _, err := s.Get(ctx, "missing"); !errors.Is(err, payment.ErrNotFound) {
			t.Errorf("Get missing = %v, want ErrNotFound", err)
		}
	})
	t.Run("CreateIsPutIfAbsent", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		first := sample("h1")
		if _, _, err := s.Create(ctx, first); err != nil {
			t.Fatal(err)
		}
		second := sample("h1")
		second.Amount = budget.USD(1)
		got, created, err := s.Create(ctx, second)
		if err != nil || created {
			t.Fatalf("second Create = %v, %v", created, err)
		}
		if d := cmp.Diff(first, got, timeEq); d != "" {
			t.Errorf("second Create must return the first record (-want +got):\n%s", d)
		}
	})
	t.Run("ConcurrentCreateExactlyOne", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		var wins atomic.Int32
		var wg sync.WaitGroup
		results := make([]issuer.Redemption, 100)
		for i := range 100 {
			wg.Go(func() {
				r := sample("race")
				r.MintKey = fmt.Sprint("k", i)
				got, created, err := s.Create(ctx, r)
				if err != nil {
					t.Error(err)
					return
				}
				if created {
					wins.Add(1)
				}
				results[i] = got
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d creates won, want exactly 1", wins.Load())
		}
		for _, r := range results[1:] {
			if r.MintKey != results[0].MintKey {
				t.Fatalf("callers saw different winners: %s vs %s", r.MintKey, results[0].MintKey)
			}
		}
	})
	t.Run("UpdateCompareAndSet", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		r := sample("h1")
		if _, _, err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		next := r
		next.Version, next.State, next.Reference = 2, payment.StateSettled, "ref-2"
		if err := s.Update(ctx, next); err != nil {
			t.Fatalf("Update: %v", err)
		}
		stale := r
		stale.Version, stale.State = 2, payment.StateRefused
		if err := s.Update(ctx, stale); !errors.Is(err, payment.ErrConflict) {
			t.Fatalf("stale Update = %v, want ErrConflict", err)
		}
		got, _ := s.Get(ctx, "h1")
		if d := cmp.Diff(next, got, timeEq); d != "" {
			t.Errorf("after Update (-want +got):\n%s", d)
		}
		missing := sample("nope")
		missing.Version = 2
		if err := s.Update(ctx, missing); !errors.Is(err, payment.ErrNotFound) {
			t.Errorf("Update missing = %v, want ErrNotFound", err)
		}
	})
	t.Run("ConcurrentUpdateExactlyOne", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		r := sample("h1")
		if _, _, err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				next := r
				next.Version = 2
				next.Reference = fmt.Sprint("ref-", i)
				err := s.Update(ctx, next)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, payment.ErrConflict):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d updates won, want exactly 1", wins.Load())
		}
	})
	t.Run("Due", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		mk := func(id string, st payment.RedemptionState, next time.Time) {
			r := sample(id)
			r.State, r.NextAttemptAt = st, next
			if _, _, err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		mk("late", payment.StateSettling, t0.Add(2*time.Minute))
		mk("b", payment.StateIssued, t0.Add(time.Minute))
		mk("a", payment.StatePending, t0)
		mk("done", payment.StateSettled, time.Time{})
		mk("zero", payment.StateCommitted, time.Time{})
		due, err := s.Due(ctx, t0.Add(time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range due {
			ids = append(ids, r.HoldID)
		}
		if d := cmp.Diff([]string{"zero", "a", "b"}, ids); d != "" {
			t.Errorf("Due ids (-want +got):\n%s", d)
		}
		due, _ = s.Due(ctx, t0.Add(time.Hour), 2)
		if len(due) != 2 {
			t.Errorf("limit 2 gave %d", len(due))
		}
		// Moving a record to a final state takes it out of Due.
		r, _ := s.Get(ctx, "a")
		r.Version, r.State = r.Version+1, payment.StateVoid
		if err := s.Update(ctx, r); err != nil {
			t.Fatal(err)
		}
		due, _ = s.Due(ctx, t0.Add(time.Hour), 10)
		if len(due) != 3 {
			t.Errorf("after finalizing one, %d due, want 3", len(due))
		}
	})
	t.Run("Durable", func(t *testing.T) {
		t.Parallel()
		h := harness(t, hm)
		if h.Reopen == nil {
			t.Skip("store is not durable")
		}
		r := sample("h1")
		if _, _, err := h.Store.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		s2, err := h.Reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s2.Get(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(r, got, timeEq); d != "" {
			t.Errorf("after reopen (-want +got):\n%s", d)
		}
	})
}

var (
	fpA = bytes.Repeat([]byte{0xa}, 32)
	fpB = bytes.Repeat([]byte{0xb}, 32)
)

func response() payment.IdempotentResponse {
	return payment.IdempotentResponse{Status: 201, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"ok":true}`)}
}

// RunIdempotencyStore runs the IdempotencyStore conformance suite.
func RunIdempotencyStore(t *testing.T, hm IdempotencyHarnessMaker) {
	ctx := context.Background()
	lease := t0.Add(time.Minute)
	keep := t0.Add(24 * time.Hour)
	begin := func(t *testing.T, s payment.IdempotencyStore, key string, fp []byte, now time.Time, want payment.IdempotencyState) *payment.IdempotentResponse {
		t.Helper()
		st, resp, err := s.Begin(ctx, key, fp, now, now.Add(time.Minute))
		if err != nil {
			t.Fatalf("Begin: %v", err)
		}
		if st != want {
			t.Fatalf("Begin(%s) = %s, want %s", key, st, want)
		}
		return resp
	}
	t.Run("Lifecycle", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		begin(t, s, "k", fpA, t0, payment.IdempotencyStarted)
		begin(t, s, "k", fpA, t0, payment.IdempotencyInFlight)
		begin(t, s, "k", fpB, t0, payment.IdempotencyMismatch)
		if err := s.Complete(ctx, "k", fpB, response(), keep); !errors.Is(err, payment.ErrConflict) {
			t.Fatalf("Complete with another fingerprint = %v", err)
		}
		if err := s.Complete(ctx, "k", fpA, response(), keep); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(ctx, "k", fpA, response(), keep); !errors.Is(err, payment.ErrConflict) {
			t.Fatalf("second Complete = %v", err)
		}
		got := begin(t, s, "k", fpA, t0.Add(time.Hour), payment.IdempotencyCompleted)
		if d := cmp.Diff(response(), *got); d != "" {
			t.Errorf("stored response (-want +got):\n%s", d)
		}
		begin(t, s, "k", fpB, t0.Add(time.Hour), payment.IdempotencyMismatch)
		if err := s.Abandon(ctx, "k", fpA); err != nil {
			t.Fatal(err)
		}
		begin(t, s, "k", fpA, t0.Add(time.Hour), payment.IdempotencyCompleted) // Abandon never drops a completed response
		begin(t, s, "k", fpB, keep, payment.IdempotencyStarted)                // retention over
		if err := s.Complete(ctx, "other", fpA, response(), keep); !errors.Is(err, payment.ErrConflict) {
			t.Fatalf("Complete without Begin = %v", err)
		}
	})
	t.Run("AbandonFreesKey", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		begin(t, s, "k", fpA, t0, payment.IdempotencyStarted)
		if err := s.Abandon(ctx, "k", fpB); err != nil {
			t.Fatal(err)
		}
		begin(t, s, "k", fpA, t0, payment.IdempotencyInFlight) // wrong fingerprint abandoned nothing
		if err := s.Abandon(ctx, "k", fpA); err != nil {
			t.Fatal(err)
		}
		begin(t, s, "k", fpB, t0, payment.IdempotencyStarted)
	})
	t.Run("LeaseExpires", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		begin(t, s, "k", fpA, t0, payment.IdempotencyStarted)
		begin(t, s, "k", fpA, lease.Add(-time.Second), payment.IdempotencyInFlight)
		begin(t, s, "k", fpB, lease, payment.IdempotencyStarted)
	})
	t.Run("ConcurrentBeginExactlyOne", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		var started atomic.Int32
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				st, _, err := s.Begin(ctx, "race", fpA, t0, lease)
				if err != nil {
					t.Error(err)
					return
				}
				switch st {
				case payment.IdempotencyStarted:
					started.Add(1)
				case payment.IdempotencyInFlight:
				default:
					t.Errorf("Begin = %s", st)
				}
			})
		}
		wg.Wait()
		if started.Load() != 1 {
			t.Fatalf("%d Begins started, want exactly 1", started.Load())
		}
	})
	t.Run("KeysAreIndependent", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		begin(t, s, "k1", fpA, t0, payment.IdempotencyStarted)
		begin(t, s, "k2", fpB, t0, payment.IdempotencyStarted)
	})
	t.Run("Durable", func(t *testing.T) {
		t.Parallel()
		h := harness(t, hm)
		if h.Reopen == nil {
			t.Skip("store is not durable")
		}
		begin(t, h.Store, "k", fpA, t0, payment.IdempotencyStarted)
		if err := h.Store.Complete(ctx, "k", fpA, response(), keep); err != nil {
			t.Fatal(err)
		}
		s2, err := h.Reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := begin(t, s2, "k", fpA, t0.Add(time.Hour), payment.IdempotencyCompleted)
		if d := cmp.Diff(response(), *got); d != "" {
			t.Errorf("after reopen (-want +got):\n%s", d)
		}
	})
}

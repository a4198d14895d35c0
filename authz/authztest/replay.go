// Package authztest holds the conformance suites every implementation of
// the authz store interfaces must pass: RunReplayStore, RunVaultStore,
// RunGrantStore,
// RunAccountStore and RunTokenStore. Each suite takes a harness maker that
// builds a fresh store (and optionally a way to reopen it, to check
// durability); every subtest runs in parallel with its own harness, and
// includes concurrency races and a rapid model check where the interface has
// state worth modelling. An implementation's test is a few lines:
//
//	func TestReplayStore(t *testing.T) {
//		authztest.RunReplayStore(t, func(ctx context.Context, t *testing.T) (*authztest.ReplayHarness, error) {
//			return &authztest.ReplayHarness{Store: authz.NewMemoryReplayStore(nil)}, nil
//		})
//	}
//
// # Roles
//
// Whoever implements an authz store: the provider's replay, account, token
// and grant stores and the orchestrator's vault store. Each Run function has
// an example with the harness a store's test writes.
package authztest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/authz"
)

// ReplayHarness is what a ReplayStore implementation hands the suite. The
// store must read the current time from the real clock: the suite uses
// expiries an hour in the past or future.
type ReplayHarness struct {
	// Store is a fresh, empty store.
	Store authz.ReplayStore
	// Reopen, when set, returns a new store over the same data (a process
	// restart or another instance); the suite then checks durability.
	Reopen func(ctx context.Context) (authz.ReplayStore, error)
}

// ReplayHarnessMaker builds a fresh harness for one subtest.
type ReplayHarnessMaker func(ctx context.Context, t *testing.T) (*ReplayHarness, error)

func mustPut(ctx context.Context, t *testing.T, s authz.ReplayStore, id string, exp time.Time, want bool) {
	t.Helper()
	got, err := s.PutIfAbsent(ctx, id, exp)
	if err != nil {
		t.Fatalf("PutIfAbsent(%q): %v", id, err)
	}
	if got != want {
		t.Fatalf("PutIfAbsent(%q, %s) = %v, want %v", id, exp.Format(time.RFC3339), got, want)
	}
}

// RunReplayStore runs the ReplayStore conformance suite: put-if-absent
// semantics, takeover of expired ids, exactly one winner among concurrent
// callers, and durability when the harness can reopen. Every subtest is
// parallel and gets its own harness.
func RunReplayStore(t *testing.T, mk ReplayHarnessMaker) {
	future := func() time.Time { return time.Now().Add(time.Hour) }
	past := func() time.Time { return time.Now().Add(-time.Hour) }

	t.Run("FirstPutWins", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		mustPut(ctx, t, h.Store, "jti-1", future(), true)
		mustPut(ctx, t, h.Store, "jti-1", future(), false)
		mustPut(ctx, t, h.Store, "jti-1", future().Add(time.Hour), false)
		mustPut(ctx, t, h.Store, "jti-2", future(), true)
		// Ids are compared exactly: case and surrounding space matter.
		mustPut(ctx, t, h.Store, "JTI-1", future(), true)
		mustPut(ctx, t, h.Store, "jti-1 ", future(), true)
	})

	t.Run("ExpiredIDIsTakenOver", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		mustPut(ctx, t, h.Store, "old", past(), true)
		mustPut(ctx, t, h.Store, "old", future(), true)
		mustPut(ctx, t, h.Store, "old", future(), false)
	})

	t.Run("LongAndOddIDs", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		long := make([]byte, 4000)
		for i := range long {
			long[i] = 'a' + byte(i%26)
		}
		longer := string(long) + "x"
		for _, id := range []string{string(long), longer, "agentprov-attestation+jwt 19:https://orch.example vQ", "ünïcødé/✓", "'; DROP TABLE x; --"} {
			mustPut(ctx, t, h.Store, id, future(), true)
			mustPut(ctx, t, h.Store, id, future(), false)
		}
	})

	t.Run("ConcurrentSameIDExactlyOneWins", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		const n = 100
		var wins, fails atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		exp := future()
		for range n {
			wg.Go(func() {
				<-start
				ok, err := h.Store.PutIfAbsent(ctx, "contended", exp)
				switch {
				case err != nil:
					fails.Add(1)
					t.Errorf("PutIfAbsent: %v", err)
				case ok:
					wins.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if fails.Load() == 0 && wins.Load() != 1 {
			t.Fatalf("%d of %d concurrent callers won, want exactly 1", wins.Load(), n)
		}
	})

	t.Run("ConcurrentExpiredTakeoverExactlyOneWins", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		mustPut(ctx, t, h.Store, "stale", past(), true)
		const n = 50
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		exp := future()
		for range n {
			wg.Go(func() {
				<-start
				ok, err := h.Store.PutIfAbsent(ctx, "stale", exp)
				if err != nil {
					t.Errorf("PutIfAbsent: %v", err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d of %d concurrent takeovers won, want exactly 1", wins.Load(), n)
		}
	})

	t.Run("ConcurrentDistinctIDsAllWin", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		const n = 64
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				ok, err := h.Store.PutIfAbsent(ctx, fmt.Sprintf("id-%d", i), future())
				if err != nil {
					t.Errorf("PutIfAbsent: %v", err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != n {
			t.Fatalf("%d of %d distinct ids recorded", wins.Load(), n)
		}
	})

	t.Run("Model", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		run := 0
		rapid.Check(t, func(rt *rapid.T) {
			run++
			live := map[string]bool{} // id -> recorded with a future expiry
			for range rapid.IntRange(1, 10).Draw(rt, "steps") {
				func(rt *rapid.T) {
					id := fmt.Sprintf("m%d-%s", run, rapid.SampledFrom([]string{"a", "b", "c"}).Draw(rt, "id"))
					expired := rapid.Bool().Draw(rt, "expired")
					exp := future()
					if expired {
						exp = past()
					}
					ok, err := h.Store.PutIfAbsent(ctx, id, exp)
					if err != nil {
						rt.Fatalf("PutIfAbsent: %v", err)
					}
					if ok == live[id] {
						rt.Fatalf("PutIfAbsent(%s) = %v, model says live=%v", id, ok, live[id])
					}
					if ok {
						live[id] = !expired
					}
				}(rt)
			}
		})
	})

	t.Run("Durable", func(t *testing.T) {
		t.Parallel()
		ctx, h := newHarness(t, mk)
		if h.Reopen == nil {
			t.Skip("harness cannot reopen")
		}
		mustPut(ctx, t, h.Store, "kept", future(), true)
		mustPut(ctx, t, h.Store, "lapsed", past(), true)
		s2, err := h.Reopen(ctx)
		if err != nil {
			t.Fatalf("Reopen: %v", err)
		}
		mustPut(ctx, t, s2, "kept", future(), false)
		mustPut(ctx, t, s2, "lapsed", future(), true)
	})

	t.Run("CanceledContext", func(t *testing.T) {
		t.Parallel()
		_, h := newHarness(t, mk)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := h.Store.PutIfAbsent(ctx, "never", future()); err == nil {
			t.Fatal("PutIfAbsent with a canceled context succeeded")
		}
	})
}

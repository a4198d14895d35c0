package paymenttest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paywall"
)

// ChallengeHarness is one fresh ChallengeStore.
type ChallengeHarness struct {
	Store paywall.ChallengeStore
	// Reopen, if set, returns a new store over the same data, as after a
	// provider restart or as another provider instance sharing the
	// database; the suite then checks that claims are seen there too.
	Reopen func(ctx context.Context) (paywall.ChallengeStore, error)
}

// ChallengeHarnessMaker returns a harness over an empty store. Cleanup is
// registered on t.
type ChallengeHarnessMaker func(ctx context.Context, t *testing.T) (*ChallengeHarness, error)

func pendingChallenge(id, fp string) paywall.ChallengeRecord {
	return paywall.ChallengeRecord{ID: id, Fingerprint: fp, State: paywall.ChallengePending, RetainUntil: t0.Add(24 * time.Hour)}
}

func servedResponse() *payment.StoredResponse {
	return &payment.StoredResponse{
		Status: 201,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Multi": {"a", "b"}},
		Body:   []byte(`{"id":"srv_1"}`),
	}
}

// RunChallengeStore runs the ChallengeStore conformance suite: Claim is a
// put-if-absent with exactly one winner among concurrent claimers, Update
// is a compare-and-set on (state, fingerprint), records round-trip whole
// (response status, multi-valued headers, body, retention time at
// microsecond precision) and are values (callers cannot alias stored
// memory), and with a Reopen the claim is visible to another instance.
func RunChallengeStore(t *testing.T, hm ChallengeHarnessMaker) {
	ctx := context.Background()
	t.Run("ClaimIsPutIfAbsent", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		rec := pendingChallenge("c1", "f1")
		got, ok, err := s.Claim(ctx, rec)
		if err != nil || !ok {
			t.Fatalf("first Claim = %v, %v", ok, err)
		}
		if d := cmp.Diff(rec, got, timeEq); d != "" {
			t.Errorf("first Claim returned (-want +got):\n%s", d)
		}
		got, ok, err = s.Claim(ctx, pendingChallenge("c1", "f2"))
		if err != nil || ok {
			t.Fatalf("second Claim = %v, %v", ok, err)
		}
		if d := cmp.Diff(rec, got, timeEq); d != "" {
			t.Errorf("second Claim must return the first record (-want +got):\n%s", d)
		}
	})
	t.Run("ConcurrentClaimExactlyOne", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		var wins atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		const n = 50
		seen := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, ok, err := s.Claim(ctx, pendingChallenge("c", fmt.Sprintf("f%02d", i)))
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if ok {
					wins.Add(1)
					winner.Store(got.Fingerprint)
				}
				seen[i] = got.Fingerprint
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d claims won, want exactly 1", wins.Load())
		}
		for i, fp := range seen {
			if fp != winner.Load() {
				t.Errorf("claimer %d saw fingerprint %q, the winner is %q", i, fp, winner.Load())
			}
		}
	})
	t.Run("GetMissing", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, paywall.ErrChallengeNotFound) {
			t.Fatalf("Get missing = %v, want ErrChallengeNotFound", err)
		}
	})
	t.Run("UpdateIsCompareAndSet", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		rec := pendingChallenge("c", "f")
		if _, _, err := s.Claim(ctx, rec); err != nil {
			t.Fatal(err)
		}
		served := rec
		served.State = paywall.ChallengeServed
		served.Response = servedResponse()
		if err := s.Update(ctx, paywall.ChallengeServed, served); !errors.Is(err, payment.ErrConflict) {
			t.Fatalf("Update from the wrong state = %v, want ErrConflict", err)
		}
		other := served
		other.Fingerprint = "g"
		if err := s.Update(ctx, paywall.ChallengePending, other); !errors.Is(err, payment.ErrConflict) {
			t.Fatalf("Update with another fingerprint = %v, want ErrConflict", err)
		}
		if err := s.Update(ctx, paywall.ChallengePending, served); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, paywall.ChallengePending, served); !errors.Is(err, payment.ErrConflict) {
			t.Fatalf("second Update from pending = %v, want ErrConflict", err)
		}
		missing := served
		missing.ID = "zz"
		if err := s.Update(ctx, paywall.ChallengePending, missing); !errors.Is(err, paywall.ErrChallengeNotFound) {
			t.Fatalf("Update of an unknown id = %v, want ErrChallengeNotFound", err)
		}
		got, err := s.Get(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(served, got, timeEq); d != "" {
			t.Errorf("Get after Update (-want +got):\n%s", d)
		}
		done := served
		done.State = paywall.ChallengeDone
		done.Response.Header.Set("Payment-Receipt", "r")
		if err := s.Update(ctx, paywall.ChallengeServed, done); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, "c"); got.State != paywall.ChallengeDone || got.Response.Header.Get("Payment-Receipt") != "r" {
			t.Errorf("Get after the second Update = %+v", got)
		}
	})
	t.Run("ConcurrentUpdateExactlyOne", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		rec := pendingChallenge("c", "f")
		if _, _, err := s.Claim(ctx, rec); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := rec
				next.State = paywall.ChallengeDone
				next.Response = &payment.StoredResponse{Status: 200 + i, Header: http.Header{}, Body: []byte{}}
				err := s.Update(ctx, paywall.ChallengePending, next)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, payment.ErrConflict):
					t.Errorf("Update: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d updates won, want exactly 1", wins.Load())
		}
	})
	t.Run("RecordsAreValues", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		rec := pendingChallenge("c", "f")
		rec.State = paywall.ChallengeDone
		rec.Response = servedResponse()
		if _, _, err := s.Claim(ctx, rec); err != nil {
			t.Fatal(err)
		}
		// Changing what was handed in or returned changes nothing stored.
		rec.Response.Body[0] = 'X'
		rec.Response.Header.Set("Content-Type", "text/plain")
		got, err := s.Get(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		got.Response.Body[1] = 'Y'
		got.Response.Header.Add("X-Multi", "c")
		again, err := s.Get(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(servedResponse(), again.Response); d != "" {
			t.Errorf("store shares memory with its callers (-want +got):\n%s", d)
		}
	})
	t.Run("NilResponse", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		if _, _, err := s.Claim(ctx, pendingChallenge("c", "f")); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "c")
		if err != nil || got.Response != nil {
			t.Fatalf("Get = %+v, %v; want a nil Response", got, err)
		}
	})
	t.Run("Reopen", func(t *testing.T) {
		t.Parallel()
		h := harness(t, hm)
		if h.Reopen == nil {
			t.Skip("store is not durable")
		}
		rec := pendingChallenge("c", "f")
		if _, _, err := h.Store.Claim(ctx, rec); err != nil {
			t.Fatal(err)
		}
		s2, err := h.Reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Another instance over the same data must not win the claim.
		got, ok, err := s2.Claim(ctx, pendingChallenge("c", "g"))
		if err != nil || ok || got.Fingerprint != "f" {
			t.Fatalf("Claim on the reopened store = %+v, %v, %v", got, ok, err)
		}
		served := rec
		served.State = paywall.ChallengeServed
		served.Response = servedResponse()
		if err := s2.Update(ctx, paywall.ChallengePending, served); err != nil {
			t.Fatal(err)
		}
		got, err = h.Store.Get(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(served, got, timeEq); d != "" {
			t.Errorf("first instance reads (-want +got):\n%s", d)
		}
	})
}

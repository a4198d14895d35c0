package paymenttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paywall"
)

// SessionHarness is one fresh SessionStore.
type SessionHarness struct {
	Store paywall.SessionStore
	// Reopen, if set, returns a new store over the same data, as after a
	// provider restart or as another provider instance sharing the
	// database; the suite then checks that sessions and their consumption
	// are seen there too.
	Reopen func(ctx context.Context) (paywall.SessionStore, error)
}

// SessionHarnessMaker returns a harness over an empty store. Cleanup is
// registered on t.
type SessionHarnessMaker func(ctx context.Context, t *testing.T) (*SessionHarness, error)

// sessionRec is an open record with every field a provider sets at Open
// (times at microsecond precision, which every SQL store keeps).
func sessionRec(id string, maxAmount int64) paywall.SessionRecord {
	return paywall.SessionRecord{
		ID: id, Token: "eyJhbGciOiJFZERTQSJ9.e30.sig-" + id, ChallengeID: "ch-" + id,
		Service: "acme/inference:chat", Max: budget.Money{Amount: maxAmount, Currency: "USD"},
		Deadline: t0.Add(50 * time.Minute), Expires: t0.Add(time.Hour),
		LastUsed: t0.Add(123456 * time.Microsecond), OpenedAt: t0.Add(123456 * time.Microsecond),
	}
}

// RunSessionStore runs the SessionStore conformance suite: Open is a
// put-if-absent, Consume enforces the session's state, deadline, maximum
// and replay window in one atomic step (concurrent consumers never exceed
// the maximum and each sequence number is accepted once), Finish refunds
// only while the session is open, Close refuses while calls are in flight
// before the deadline, Settle is final and idempotent, Due selects exactly
// the records that need the provider's attention, records round-trip whole
// at microsecond precision, and with a Reopen everything is seen by
// another instance.
func RunSessionStore(t *testing.T, hm SessionHarnessMaker) {
	ctx := context.Background()
	now := t0.Add(time.Minute)
	t.Run("OpenIsPutIfAbsent", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		rec := sessionRec("s1", 1000)
		got, err := s.Open(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		want := rec
		want.State, want.Version = paywall.SessionOpen, 1
		if d := cmp.Diff(want, got, timeEq); d != "" {
			t.Errorf("Open returned (-want +got):\n%s", d)
		}
		other := sessionRec("s1", 5)
		other.Token = "another"
		got, err = s.Open(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got, timeEq); d != "" {
			t.Errorf("second Open must return the first record (-want +got):\n%s", d)
		}
		got, err = s.Get(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got, timeEq); d != "" {
			t.Errorf("Get after Open (-want +got):\n%s", d)
		}
	})
	t.Run("ConcurrentOpenOneRecord", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		var wg sync.WaitGroup
		const n = 32
		tokens := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := sessionRec("s", 1000)
				r.Token = fmt.Sprintf("tok-%02d", i)
				got, err := s.Open(ctx, r)
				if err != nil {
					t.Errorf("Open: %v", err)
					return
				}
				tokens[i] = got.Token
			}()
		}
		wg.Wait()
		for i, tok := range tokens {
			if tok != tokens[0] {
				t.Errorf("opener %d saw token %q, opener 0 saw %q: two records for one id", i, tok, tokens[0])
			}
		}
	})
	t.Run("UnknownSession", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, payment.ErrSessionUnknown) {
			t.Errorf("Get = %v, want ErrSessionUnknown", err)
		}
		if _, err := s.Consume(ctx, "nope", 1, 1, now); !errors.Is(err, payment.ErrSessionUnknown) {
			t.Errorf("Consume = %v, want ErrSessionUnknown", err)
		}
		if err := s.Finish(ctx, "nope", 1, true); !errors.Is(err, payment.ErrSessionUnknown) {
			t.Errorf("Finish = %v, want ErrSessionUnknown", err)
		}
		if _, err := s.Close(ctx, "nope", now); !errors.Is(err, payment.ErrSessionUnknown) {
			t.Errorf("Close = %v, want ErrSessionUnknown", err)
		}
		if err := s.Settle(ctx, "nope", 1, "r"); !errors.Is(err, payment.ErrSessionUnknown) {
			t.Errorf("Settle = %v, want ErrSessionUnknown", err)
		}
	})
	t.Run("ConsumeRules", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		if _, err := s.Open(ctx, sessionRec("s", 100)); err != nil {
			t.Fatal(err)
		}
		at := now.Add(1234 * time.Microsecond)
		got, err := s.Consume(ctx, "s", 5, 30, at)
		if err != nil {
			t.Fatal(err)
		}
		if got.Consumed != 30 || got.Calls != 1 || got.InFlight != 1 || got.HighSeq != 5 || !got.LastUsed.Equal(at) || got.Version != 2 {
			t.Errorf("after one Consume: consumed %d calls %d in flight %d high %d last used %v version %d",
				got.Consumed, got.Calls, got.InFlight, got.HighSeq, got.LastUsed, got.Version)
		}
		refused := []struct {
			name   string
			seq    uint64
			amount int64
			at     time.Time
			want   error
		}{
			{"seq 0", 0, 1, now, payment.ErrSessionReplay},
			{"replayed seq", 5, 1, now, payment.ErrSessionReplay},
			{"below the window", 5 + paywall.SessionWindow, 1, now, nil}, // accepted, moves the window
			{"now out of the window", 5, 1, now, payment.ErrSessionReplay},
			{"amount 0", 1000, 0, now, payment.ErrSessionExhausted},
			{"negative amount", 1001, -5, now, payment.ErrSessionExhausted},
			{"over the maximum", 1002, 70, now, payment.ErrSessionExhausted},
			{"at the deadline", 1003, 1, t0.Add(50 * time.Minute), payment.ErrSessionClosed},
		}
		for _, c := range refused {
			before, _ := s.Get(ctx, "s")
			_, err := s.Consume(ctx, "s", c.seq, c.amount, c.at)
			if c.want == nil {
				if err != nil {
					t.Errorf("%s: Consume = %v, want it accepted", c.name, err)
				}
				continue
			}
			if !errors.Is(err, c.want) {
				t.Errorf("%s: Consume = %v, want %v", c.name, err, c.want)
			}
			after, _ := s.Get(ctx, "s")
			if d := cmp.Diff(before, after, timeEq); d != "" {
				t.Errorf("%s: a refused Consume changed the record (-before +after):\n%s", c.name, d)
			}
		}
		// Out of order inside the window: each accepted once.
		for _, seq := range []uint64{300, 299, 290} {
			if _, err := s.Consume(ctx, "s", seq, 1, now); err != nil {
				t.Errorf("Consume seq %d inside the window = %v", seq, err)
			}
			if _, err := s.Consume(ctx, "s", seq, 1, now); !errors.Is(err, payment.ErrSessionReplay) {
				t.Errorf("second Consume seq %d = %v, want ErrSessionReplay", seq, err)
			}
		}
		// Exactly up to the maximum.
		cur, _ := s.Get(ctx, "s")
		if _, err := s.Consume(ctx, "s", 2000, 100-cur.Consumed, now); err != nil {
			t.Errorf("Consume of exactly the rest = %v", err)
		}
		if _, err := s.Consume(ctx, "s", 2001, 1, now); !errors.Is(err, payment.ErrSessionExhausted) {
			t.Errorf("Consume past the maximum = %v, want ErrSessionExhausted", err)
		}
	})
	t.Run("ConcurrentConsumeNeverOverMax", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		const maxAmount, n = 50, 40
		if _, err := s.Open(ctx, sessionRec("s", maxAmount)); err != nil {
			t.Fatal(err)
		}
		var ok, replays atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(2)
			for range 2 { // every seq twice: accepted at most once
				go func() {
					defer wg.Done()
					_, err := s.Consume(ctx, "s", uint64(i+1), 2, now)
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, payment.ErrSessionReplay):
						replays.Add(1)
					case errors.Is(err, payment.ErrSessionExhausted):
					default:
						t.Errorf("Consume: %v", err)
					}
				}()
			}
		}
		wg.Wait()
		got, err := s.Get(ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		if ok.Load() != maxAmount/2 || got.Consumed != maxAmount || got.Calls != maxAmount/2 || got.InFlight != maxAmount/2 {
			t.Errorf("%d accepted, record consumed %d calls %d in flight %d; want %d accepted and consumed %d",
				ok.Load(), got.Consumed, got.Calls, got.InFlight, maxAmount/2, maxAmount)
		}
		if replays.Load() == 0 {
			t.Log("no replay was refused (every duplicate lost to the maximum first)")
		}
	})
	t.Run("FinishRefundsOnlyWhileOpen", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		if _, err := s.Open(ctx, sessionRec("s", 100)); err != nil {
			t.Fatal(err)
		}
		for seq := uint64(1); seq <= 3; seq++ {
			if _, err := s.Consume(ctx, "s", seq, 10, now); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Finish(ctx, "s", 10, false); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(ctx, "s", 10, true); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get(ctx, "s")
		if got.Consumed != 20 || got.Calls != 2 || got.InFlight != 1 {
			t.Errorf("after a finish and a refund: consumed %d calls %d in flight %d, want 20 2 1", got.Consumed, got.Calls, got.InFlight)
		}
		// Past the deadline the session closes with the call in flight;
		// its refund then comes too late and changes nothing billed.
		if _, err := s.Close(ctx, "s", t0.Add(51*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(ctx, "s", 10, true); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Get(ctx, "s")
		if got.Consumed != 20 || got.Calls != 2 || got.InFlight != 0 || got.State != paywall.SessionClosing {
			t.Errorf("refund after close: consumed %d calls %d in flight %d state %s, want 20 2 0 closing",
				got.Consumed, got.Calls, got.InFlight, got.State)
		}
	})
	t.Run("CloseWaitsForCallsInFlight", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		if _, err := s.Open(ctx, sessionRec("s", 100)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Consume(ctx, "s", 1, 10, now); err != nil {
			t.Fatal(err)
		}
		got, err := s.Close(ctx, "s", now)
		if !errors.Is(err, payment.ErrConflict) {
			t.Fatalf("Close with a call in flight = %v, want ErrConflict", err)
		}
		if got.State != paywall.SessionOpen || got.InFlight != 1 {
			t.Errorf("refused Close returned state %s in flight %d", got.State, got.InFlight)
		}
		if err := s.Finish(ctx, "s", 10, false); err != nil {
			t.Fatal(err)
		}
		got, err = s.Close(ctx, "s", now)
		if err != nil || got.State != paywall.SessionClosing || got.Consumed != 10 {
			t.Fatalf("Close = %s consumed %d, %v; want closing 10", got.State, got.Consumed, err)
		}
		if _, err := s.Consume(ctx, "s", 2, 1, now); !errors.Is(err, payment.ErrSessionClosed) {
			t.Errorf("Consume on a closing session = %v, want ErrSessionClosed", err)
		}
		again, err := s.Close(ctx, "s", now)
		if err != nil || again.Version != got.Version {
			t.Errorf("second Close = version %d, %v; want the record unchanged (version %d)", again.Version, err, got.Version)
		}
	})
	t.Run("SettleIsFinal", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		if _, err := s.Open(ctx, sessionRec("s", 100)); err != nil {
			t.Fatal(err)
		}
		if err := s.Settle(ctx, "s", 0, "r"); !errors.Is(err, payment.ErrConflict) {
			t.Fatalf("Settle of an open session = %v, want ErrConflict", err)
		}
		if _, err := s.Consume(ctx, "s", 1, 40, now); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(ctx, "s", 40, false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Close(ctx, "s", now); err != nil {
			t.Fatal(err)
		}
		if err := s.Settle(ctx, "s", 40, "receipt-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Settle(ctx, "s", 99, "receipt-2"); err != nil {
			t.Fatalf("second Settle = %v, want a no-op", err)
		}
		got, _ := s.Get(ctx, "s")
		if got.State != paywall.SessionSettled || got.Settled != 40 || got.Reference != "receipt-1" {
			t.Errorf("settled record: state %s settled %d reference %q, want settled 40 receipt-1", got.State, got.Settled, got.Reference)
		}
		if closed, err := s.Close(ctx, "s", now); err != nil || closed.State != paywall.SessionSettled {
			t.Errorf("Close of a settled session = %s, %v", closed.State, err)
		}
		if _, err := s.Consume(ctx, "s", 2, 1, now); !errors.Is(err, payment.ErrSessionClosed) {
			t.Errorf("Consume on a settled session = %v, want ErrSessionClosed", err)
		}
	})
	t.Run("ConcurrentTransitions", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		if _, err := s.Open(ctx, sessionRec("s", 1000)); err != nil {
			t.Fatal(err)
		}
		// Calls, finishes and closes race; whatever wins, the record's
		// counters stay consistent with the calls that were accepted.
		var accepted, refunded atomic.Int64
		var wg sync.WaitGroup
		for i := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Consume(ctx, "s", uint64(i+1), 5, now); err != nil {
					if !errors.Is(err, payment.ErrSessionClosed) {
						t.Errorf("Consume: %v", err)
					}
					return
				}
				accepted.Add(1)
				refund := i%3 == 0
				if err := s.Finish(ctx, "s", 5, refund); err != nil {
					t.Errorf("Finish: %v", err)
				}
				if refund {
					refunded.Add(1)
				}
				if i%8 == 7 {
					if _, err := s.Close(ctx, "s", now); err != nil && !errors.Is(err, payment.ErrConflict) {
						t.Errorf("Close: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		got, err := s.Get(ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		if got.InFlight != 0 {
			t.Errorf("in flight %d after every call finished", got.InFlight)
		}
		if got.Consumed != 5*got.Calls || got.Calls > accepted.Load() || got.Calls < accepted.Load()-refunded.Load() {
			t.Errorf("consumed %d over %d calls; %d accepted, %d refunds", got.Consumed, got.Calls, accepted.Load(), refunded.Load())
		}
	})
	t.Run("Due", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		idleBefore := now.Add(-5 * time.Minute)
		mk := func(id string, edit func(*paywall.SessionRecord)) {
			r := sessionRec(id, 100)
			r.LastUsed = now
			edit(&r)
			if _, err := s.Open(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		mk("busy", func(r *paywall.SessionRecord) {})
		mk("idle", func(r *paywall.SessionRecord) { r.LastUsed = idleBefore })
		mk("late", func(r *paywall.SessionRecord) { r.Deadline = now })
		mk("full", func(r *paywall.SessionRecord) {})
		mk("closing", func(r *paywall.SessionRecord) {})
		mk("settled", func(r *paywall.SessionRecord) {})
		if _, err := s.Consume(ctx, "full", 1, 100, now); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"closing", "settled"} {
			if _, err := s.Close(ctx, id, now); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Settle(ctx, "settled", 0, "released"); err != nil {
			t.Fatal(err)
		}
		due, err := s.Due(ctx, now, idleBefore, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range due {
			ids = append(ids, r.ID)
		}
		if d := cmp.Diff([]string{"closing", "full", "idle", "late"}, ids); d != "" {
			t.Errorf("Due ids (-want +got):\n%s", d)
		}
		due, err = s.Due(ctx, now, idleBefore, 2)
		if err != nil || len(due) != 2 {
			t.Errorf("Due with limit 2 = %d records, %v", len(due), err)
		}
	})
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s := harness(t, hm).Store
		if _, err := s.Open(ctx, sessionRec("s", 100)); err != nil {
			t.Fatal(err)
		}
		at := now.Add(987654 * time.Microsecond)
		for _, seq := range []uint64{70, 3, 64, 200} {
			if _, err := s.Consume(ctx, "s", seq, 7, at); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Get(ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		want := sessionRec("s", 100)
		want.State, want.Version = paywall.SessionOpen, 5
		want.Consumed, want.Calls, want.InFlight, want.LastUsed = 28, 4, 4, at
		for _, seq := range []uint64{200, 70, 3, 64} {
			want.AcceptSeq(seq)
		}
		if d := cmp.Diff(want, got, timeEq); d != "" {
			t.Errorf("record after four calls (-want +got):\n%s", d)
		}
		got.Token = "changed by the caller"
		again, _ := s.Get(ctx, "s")
		if again.Token != want.Token {
			t.Error("a returned record aliases the store's memory")
		}
	})
	t.Run("Reopen", func(t *testing.T) {
		t.Parallel()
		h := harness(t, hm)
		if h.Reopen == nil {
			t.Skip("harness has no Reopen: the store does not outlive its process")
		}
		if _, err := h.Store.Open(ctx, sessionRec("s", 100)); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Store.Consume(ctx, "s", 1, 30, now); err != nil {
			t.Fatal(err)
		}
		other, err := h.Reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Consume(ctx, "s", 1, 30, now); !errors.Is(err, payment.ErrSessionReplay) {
			t.Errorf("the other instance accepted a replayed seq: %v", err)
		}
		if _, err := other.Consume(ctx, "s", 2, 71, now); !errors.Is(err, payment.ErrSessionExhausted) {
			t.Errorf("the other instance ignored what was consumed: %v", err)
		}
		if _, err := other.Consume(ctx, "s", 2, 70, now); err != nil {
			t.Fatal(err)
		}
		got, err := h.Store.Get(ctx, "s")
		if err != nil || got.Consumed != 100 || got.Calls != 2 {
			t.Errorf("first instance sees consumed %d calls %d, %v; want 100 over 2", got.Consumed, got.Calls, err)
		}
	})
}

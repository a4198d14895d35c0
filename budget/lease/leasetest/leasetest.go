// Package leasetest is the conformance suite every lease.Journal passes.
//
// An implementation hooks in with a JournalHarness over fresh, empty data
// and one test (this one is over lease.FileJournal; see ExampleRunJournal):
//
//	type fileHarness struct {
//		path string
//		j    *lease.FileJournal
//	}
//
//	func (h *fileHarness) Journal() lease.Journal { return h.j }
//	func (h *fileHarness) Reopen(context.Context) (lease.Journal, error) {
//		h.j.Close() // as a crashed process would lose its handle
//		j, err := lease.OpenFileJournal(h.path)
//		if err == nil {
//			h.j = j
//		}
//		return j, err
//	}
//	func (h *fileHarness) Close() { h.j.Close() }
//
//	func TestJournal(t *testing.T) {
//		leasetest.RunJournal(t, func(ctx context.Context, t *testing.T) (leasetest.JournalHarness, error) {
//			path := filepath.Join(t.TempDir(), "journal")
//			j, err := lease.OpenFileJournal(path)
//			return &fileHarness{path, j}, err
//		})
//	}
//
// RunJournal checks what a lease.Pool relies on: every field of every
// record kind round-trips, replay is in append order and repeatable,
// concurrent appends are each replayed exactly once and keep every
// caller's own order, a done context appends nothing, an error from the
// replay callback stops the replay and is returned, what was appended
// survives Reopen (a process restart) with later appends after it, and a
// rapid state-machine test of appends and reopens against a list. A
// journal that implements lease.Compacter is also checked to drop exactly
// the records of settled leases, to lose no append made while it
// compacts, and to stay compacted across Reopen.
//
// # Roles
//
// Whoever implements a lease.Journal for an orchestrator's lease.Pool.
package leasetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/lease"
)

// ErrReopenUnsupported is returned by JournalHarness.Reopen for a journal
// whose data does not outlive its handle; the durability tests then skip.
var ErrReopenUnsupported = errors.New("leasetest: reopen unsupported")

// JournalHarness gives the suite one journal over fresh, empty data.
type JournalHarness interface {
	// Journal returns the journal under test; after Reopen, the reopened one.
	Journal() lease.Journal
	// Reopen drops the journal's handle and opens the same data again, as
	// a restarted process would, returning the new journal (which Journal
	// then returns). Journals without durable data return
	// ErrReopenUnsupported.
	Reopen(ctx context.Context) (lease.Journal, error)
	// Close releases everything the harness holds.
	Close()
}

// JournalHarnessMaker makes a harness over fresh data. It is called once per
// subtest, possibly from parallel subtests.
type JournalHarnessMaker func(ctx context.Context, t *testing.T) (JournalHarness, error)

// RunJournal runs the conformance suite against the journals mk makes.
func RunJournal(t *testing.T, mk JournalHarnessMaker) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, JournalHarness)
	}{
		{"Empty", testEmpty},
		{"RoundTrip", testRoundTrip},
		{"ReplayRepeatable", testReplayRepeatable},
		{"Concurrent", testConcurrent},
		{"DoneContext", testDoneContext},
		{"ReplayCallbackError", testReplayCallbackError},
		{"Reopen", testReopen},
		{"Compact", testCompact},
		{"CompactWhileAppending", testCompactWhileAppending},
		{"Model", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fn == nil {
				testModel(t, mk)
				return
			}
			h := open(t, mk)
			tc.fn(t, h)
		})
	}
}

func open(t *testing.T, mk JournalHarnessMaker) JournalHarness {
	t.Helper()
	h, err := mk(t.Context(), t)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// replayAll returns every record j replays.
func replayAll(t *testing.T, j lease.Journal) []lease.Record {
	t.Helper()
	var got []lease.Record
	if err := j.Replay(t.Context(), func(r lease.Record) error {
		got = append(got, r)
		return nil
	}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return got
}

func appendAll(t *testing.T, j lease.Journal, recs []lease.Record) {
	t.Helper()
	for i, r := range recs {
		if err := j.Append(t.Context(), r); err != nil {
			t.Fatalf("Append %d (%s): %v", i, r.Kind, err)
		}
	}
}

// sample is one record of every kind with every field a Pool sets.
func sample() []lease.Record {
	scope := budget.Scope{Project: "proj_ü", Provider: "acme"}
	exp := time.Date(2026, 12, 7, 15, 4, 5, 123456789, time.FixedZone("x", 3600))
	return []lease.Record{
		{Kind: lease.KindLease, LeaseKey: "lease:c1:1", Scope: scope, Amount: 40000, Currency: "USD"},
		{Kind: lease.KindGranted, LeaseKey: "lease:c1:1", LeaseID: "hold_1", Scope: scope, Amount: 40000, Currency: "USD", ExpiresAt: exp},
		{Kind: lease.KindReserve, LeaseKey: "lease:c1:1", Sub: "sub_1", Amount: 1299},
		{Kind: lease.KindCommit, LeaseKey: "lease:c1:1", Sub: "sub_1", Amount: 1250},
		{Kind: lease.KindSettled, LeaseKey: "lease:c1:1", LeaseID: "hold_1", Amount: 1250},
	}
}

func testEmpty(t *testing.T, h JournalHarness) {
	if got := replayAll(t, h.Journal()); len(got) != 0 {
		t.Fatalf("a fresh journal replayed %d records: %+v", len(got), got)
	}
}

func testRoundTrip(t *testing.T, h JournalHarness) {
	want := sample()
	appendAll(t, h.Journal(), want)
	if diff := cmp.Diff(want, replayAll(t, h.Journal())); diff != "" {
		t.Fatalf("replayed records differ from those appended (-want +got):\n%s", diff)
	}
}

func testReplayRepeatable(t *testing.T, h JournalHarness) {
	want := sample()
	appendAll(t, h.Journal(), want[:2])
	first := replayAll(t, h.Journal())
	if diff := cmp.Diff(first, replayAll(t, h.Journal())); diff != "" {
		t.Fatalf("a second Replay differs (-first +second):\n%s", diff)
	}
	appendAll(t, h.Journal(), want[2:])
	if diff := cmp.Diff(want, replayAll(t, h.Journal())); diff != "" {
		t.Fatalf("appends after a Replay (-want +got):\n%s", diff)
	}
}

func testConcurrent(t *testing.T, h JournalHarness) {
	const writers, each = 32, 25
	j := h.Journal()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r := lease.Record{Kind: lease.KindCommit, LeaseKey: fmt.Sprintf("w%d", w), Sub: fmt.Sprintf("w%d-%d", w, i), Amount: int64(i + 1)}
				if err := j.Append(context.Background(), r); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Append: %v", err)
	}
	next := map[string]int64{} // writer → the amount its next record must have
	seen := map[string]bool{}
	for _, r := range replayAll(t, j) {
		if seen[r.Sub] {
			t.Fatalf("record %s replayed twice", r.Sub)
		}
		seen[r.Sub] = true
		if want := next[r.LeaseKey] + 1; r.Amount != want {
			t.Fatalf("writer %s: record %d replayed where %d was next: a caller's own order was not kept", r.LeaseKey, r.Amount, want)
		}
		next[r.LeaseKey] = r.Amount
	}
	if len(seen) != writers*each {
		t.Fatalf("replayed %d records, want %d", len(seen), writers*each)
	}
}

func testDoneContext(t *testing.T, h JournalHarness) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := h.Journal().Append(ctx, sample()[0]); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled context = %v, want context.Canceled", err)
	}
	if got := replayAll(t, h.Journal()); len(got) != 0 {
		t.Fatalf("an Append with a canceled context left %d records", len(got))
	}
	appendAll(t, h.Journal(), sample()[:1])
	err := h.Journal().Replay(ctx, func(lease.Record) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Replay with a canceled context = %v, want context.Canceled", err)
	}
}

func testReplayCallbackError(t *testing.T, h JournalHarness) {
	appendAll(t, h.Journal(), sample())
	stop := errors.New("stop here")
	calls := 0
	err := h.Journal().Replay(t.Context(), func(lease.Record) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Replay = %v, want the callback's error", err)
	}
	if calls != 2 {
		t.Fatalf("Replay called back %d times after the error at call 2", calls)
	}
}

func testReopen(t *testing.T, h JournalHarness) {
	want := sample()
	appendAll(t, h.Journal(), want[:3])
	j, err := h.Reopen(t.Context())
	if errors.Is(err, ErrReopenUnsupported) {
		t.Skip("the journal has no durable data")
	}
	if err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	if diff := cmp.Diff(want[:3], replayAll(t, j)); diff != "" {
		t.Fatalf("after Reopen (-want +got):\n%s", diff)
	}
	appendAll(t, j, want[3:])
	if j, err = h.Reopen(t.Context()); err != nil {
		t.Fatalf("second Reopen: %v", err)
	}
	if diff := cmp.Diff(want, replayAll(t, j)); diff != "" {
		t.Fatalf("appends after a Reopen (-want +got):\n%s", diff)
	}
}

// testModel: random appends, replays, reopens and compactions against a
// list.
func testModel(t *testing.T, mk JournalHarnessMaker) {
	rapid.Check(t, func(rt *rapid.T) {
		h, err := mk(t.Context(), t)
		if err != nil {
			rt.Fatalf("harness: %v", err)
		}
		defer h.Close()
		var model []lease.Record
		kinds := []lease.Kind{lease.KindLease, lease.KindGranted, lease.KindReserve, lease.KindCommit, lease.KindSettled}
		reopenable := true
		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				r := lease.Record{
					Kind:     rapid.SampledFrom(kinds).Draw(rt, "kind"),
					LeaseKey: rapid.SampledFrom([]string{"l1", "l2", "l3", "l4"}).Draw(rt, "lease"),
					Sub:      rapid.StringMatching(`[a-z0-9_]{0,12}`).Draw(rt, "sub"),
					Amount:   rapid.Int64Range(0, 1<<53).Draw(rt, "amount"),
				}
				if err := h.Journal().Append(context.Background(), r); err != nil {
					rt.Fatalf("Append: %v", err)
				}
				model = append(model, r)
			},
			"compact": func(rt *rapid.T) {
				c, ok := h.Journal().(lease.Compacter)
				if !ok {
					rt.Skip("not a Compacter")
				}
				settled := map[string]bool{}
				for _, r := range model {
					if r.Kind == lease.KindSettled {
						settled[r.LeaseKey] = true
					}
				}
				var kept []lease.Record
				for _, r := range model {
					if !settled[r.LeaseKey] {
						kept = append(kept, r)
					}
				}
				n, err := c.Compact(context.Background())
				if err != nil {
					rt.Fatalf("Compact: %v", err)
				}
				if n != len(model)-len(kept) {
					rt.Fatalf("Compact dropped %d records, the model %d", n, len(model)-len(kept))
				}
				model = kept
			},
			"reopen": func(rt *rapid.T) {
				if !reopenable {
					rt.Skip("no durable data")
				}
				if _, err := h.Reopen(context.Background()); errors.Is(err, ErrReopenUnsupported) {
					reopenable = false
					rt.Skip("no durable data")
				} else if err != nil {
					rt.Fatalf("Reopen: %v", err)
				}
			},
			"": func(rt *rapid.T) {
				var got []lease.Record
				if err := h.Journal().Replay(context.Background(), func(r lease.Record) error {
					got = append(got, r)
					return nil
				}); err != nil {
					rt.Fatalf("Replay: %v", err)
				}
				if diff := cmp.Diff(model, got); diff != "" {
					rt.Fatalf("journal differs from the model (-model +journal):\n%s", diff)
				}
			},
		})
	})
}

func compacter(t *testing.T, h JournalHarness) lease.Compacter {
	c, ok := h.Journal().(lease.Compacter)
	if !ok {
		t.Skip("the journal does not implement lease.Compacter")
	}
	return c
}

// leaseRecords is the life of one lease, settled or not.
func leaseRecords(key string, settled bool) []lease.Record {
	recs := []lease.Record{
		{Kind: lease.KindLease, LeaseKey: key, Amount: 100, Currency: "USD"},
		{Kind: lease.KindGranted, LeaseKey: key, LeaseID: "id-" + key},
		{Kind: lease.KindReserve, LeaseKey: key, Sub: key + "-s1", Amount: 10},
		{Kind: lease.KindCommit, LeaseKey: key, Sub: key + "-s1", Amount: 7},
	}
	if settled {
		recs = append(recs, lease.Record{Kind: lease.KindSettled, LeaseKey: key, LeaseID: "id-" + key, Amount: 7})
	}
	return recs
}

func testCompact(t *testing.T, h JournalHarness) {
	c := compacter(t, h)
	var all, want []lease.Record
	for i := 0; i < 6; i++ {
		settled := i%2 == 0
		recs := leaseRecords(fmt.Sprintf("lease-%d", i), settled)
		all = append(all, recs...)
		if !settled {
			want = append(want, recs...)
		}
	}
	appendAll(t, h.Journal(), all)
	n, err := c.Compact(t.Context())
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if n != len(all)-len(want) {
		t.Fatalf("Compact dropped %d records, want %d (the settled leases')", n, len(all)-len(want))
	}
	if diff := cmp.Diff(want, replayAll(t, h.Journal())); diff != "" {
		t.Fatalf("after Compact (-want +got):\n%s", diff)
	}
	if n, err := c.Compact(t.Context()); err != nil || n != 0 {
		t.Fatalf("second Compact = %d, %v; want nothing to drop", n, err)
	}
	more := leaseRecords("lease-after", false)
	appendAll(t, h.Journal(), more)
	want = append(want, more...)
	if diff := cmp.Diff(want, replayAll(t, h.Journal())); diff != "" {
		t.Fatalf("appends after Compact (-want +got):\n%s", diff)
	}
	j, err := h.Reopen(t.Context())
	if errors.Is(err, ErrReopenUnsupported) {
		return
	}
	if err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	if diff := cmp.Diff(want, replayAll(t, j)); diff != "" {
		t.Fatalf("after Compact and Reopen (-want +got):\n%s", diff)
	}
}

func testCompactWhileAppending(t *testing.T, h JournalHarness) {
	c := compacter(t, h)
	j := h.Journal()
	const writers, each = 8, 150
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				recs := []lease.Record{{Kind: lease.KindCommit, LeaseKey: fmt.Sprintf("live-%d", w), Sub: fmt.Sprintf("w%d-%d", w, i), Amount: int64(i + 1)}}
				if i%3 == 0 { // a lease that lives and is settled meanwhile
					recs = append(recs, leaseRecords(fmt.Sprintf("old-%d-%d", w, i), true)...)
				}
				for _, r := range recs {
					if err := j.Append(context.Background(), r); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	compactions, dropped := 0, 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		n, err := c.Compact(t.Context())
		if err != nil {
			t.Fatalf("Compact while appending: %v", err)
		}
		compactions++
		dropped += n
	}
	close(errs)
	for err := range errs {
		t.Fatalf("Append while compacting: %v", err)
	}
	got := replayAll(t, j)
	next := map[string]int64{}
	live := 0
	for _, r := range got {
		if r.LeaseKey[:4] == "old-" {
			t.Fatalf("a settled lease's record survived the final compaction: %+v", r)
		}
		if want := next[r.LeaseKey] + 1; r.Amount != want {
			t.Fatalf("writer %s: record %d where %d was next: an append was lost or reordered by Compact", r.LeaseKey, r.Amount, want)
		}
		next[r.LeaseKey] = r.Amount
		live++
	}
	if live != writers*each {
		t.Fatalf("%d live records after %d compactions under appends (%d records dropped), want %d", live, compactions, dropped, writers*each)
	}
}

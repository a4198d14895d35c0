package leasetest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentprov/agentprov/budget/lease"
	"github.com/agentprov/agentprov/budget/lease/leasetest"
)

// A journal's own test passes its harness maker to RunJournal. The suite
// needs a real *testing.T, so it runs from a test function, not from this
// example; here the harness is exercised by hand.
func ExampleRunJournal() {
	// In your journal's _test.go file:
	testJournal := func(t *testing.T) { leasetest.RunJournal(t, newFileHarness) }
	_ = testJournal

	ctx := context.Background()
	h := memoryHarness{lease.NewMemoryJournal()}
	_ = h.Journal().Append(ctx, lease.Record{Kind: lease.KindCommit, LeaseKey: "lease-1", Sub: "sub-1", Amount: 1299})
	j, _ := h.Reopen(ctx)
	_ = j.Replay(ctx, func(r lease.Record) error {
		fmt.Println(r.Kind, r.Sub, r.Amount)
		return nil
	})
	// Output: commit sub-1 1299
}

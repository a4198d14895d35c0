package budgettest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/budgettest"
)

// memoryHarness is the harness a store implementation writes, here over
// the in-memory store. A durable store's Reopen closes its handle and opens
// the same data again; Close releases the database.
type memoryHarness struct{ store budget.Store }

func (h memoryHarness) Store() budget.Store { return h.store }

func (h memoryHarness) Reopen(context.Context) (budget.Store, error) {
	return nil, budgettest.ErrReopenUnsupported
}

func (h memoryHarness) Close() {}

// newMemoryHarness is the HarnessMaker: a fresh, empty store per call.
func newMemoryHarness(ctx context.Context, t *testing.T) (budgettest.Harness, error) {
	return memoryHarness{budget.NewMemoryStore(nil)}, nil
}

// A store's own test passes its harness maker to Run (and, for the
// state-machine check alone, to RunModel). The suites need a real
// *testing.T, so they run from a test function, not from this example.
func ExampleRun() {
	// In your store's _test.go file:
	testConformance := func(t *testing.T) { budgettest.Run(t, newMemoryHarness) }
	testModelOnly := func(t *testing.T) { budgettest.RunModel(t, newMemoryHarness) }
	_, _ = testConformance, testModelOnly

	h, err := newMemoryHarness(context.Background(), nil)
	_, reopenErr := h.Reopen(context.Background())
	fmt.Println(h.Store() != nil, err)
	fmt.Println(reopenErr)
	// Output:
	// true <nil>
	// budgettest: reopen unsupported
}

// RunModel alone is the rapid state-machine check against a simple model,
// useful while a new store is being written.
func ExampleRunModel() {
	testModel := func(t *testing.T) { budgettest.RunModel(t, newMemoryHarness) }
	_ = testModel
	fmt.Println("run from a test: budgettest.RunModel(t, newMemoryHarness)")
	// Output: run from a test: budgettest.RunModel(t, newMemoryHarness)
}

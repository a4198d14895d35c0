package budget_test

import (
	"context"
	"testing"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/budgettest"
)

type memHarness struct{ s *budget.MemoryStore }

func (h memHarness) Store() budget.Store { return h.s }
func (h memHarness) Reopen(context.Context) (budget.Store, error) {
	return nil, budgettest.ErrReopenUnsupported
}
func (h memHarness) Close() {}

// ModelRounds: the in-memory store is fast enough for 3000 random sequences
// per run (300 with -short).
func (h memHarness) ModelRounds(short bool) int {
	if short {
		return 3
	}
	return 30
}

func TestMemoryStoreConformance(t *testing.T) {
	budgettest.Run(t, func(ctx context.Context, t *testing.T) (budgettest.Harness, error) {
		return memHarness{budget.NewMemoryStore(nil)}, nil
	})
}

// A single shard makes every project contend and share maps: the suite
// must pass unchanged.
func TestMemoryStoreOneShard(t *testing.T) {
	budgettest.Run(t, func(ctx context.Context, t *testing.T) (budgettest.Harness, error) {
		return memHarness{budget.NewMemoryStore(&budget.MemoryStoreOptions{Shards: 1})}, nil
	})
}

package lease_test

import (
	"context"
	"fmt"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/lease"
)

func Example() {
	ctx := context.Background()
	now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	shared := budget.NewMemoryStore(nil)
	journal := lease.NewMemoryJournal()
	pool, err := lease.New(ctx, shared, journal, &lease.Options{Slice: 500, Now: clock, SettleEvery: -1})
	if err != nil {
		panic(err)
	}
	scope := budget.Scope{Project: "blog", Provider: "acme"}
	h, err := pool.Reserve(ctx, scope, budget.USD(120), "call-1")
	if err != nil {
		panic(err)
	}
	if _, err := pool.Commit(ctx, h.ID, budget.USD(100)); err != nil {
		panic(err)
	}
	u, _ := pool.Ledger().Usage(ctx, scope)
	fmt.Println("while leased: held", u.Counters[1].Held, "committed", u.Counters[1].Committed)
	if err := pool.Close(ctx); err != nil {
		panic(err)
	}
	u, _ = pool.Ledger().Usage(ctx, scope)
	fmt.Println("settled: held", u.Counters[1].Held, "committed", u.Counters[1].Committed)
	// Output:
	// while leased: held 500 committed 0
	// settled: held 0 committed 100
}

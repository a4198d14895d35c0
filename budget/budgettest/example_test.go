package budgettest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/budgettest"
)

// A store whose reply to a reservation is lost (the write happened, the
// answer did not arrive): the Ledger reports a store error, grants nothing,
// and a retry under the same idempotency key finds the one hold that was
// written instead of counting the amount twice.
func ExampleFaulty() {
	ctx := context.Background()
	faulty := budgettest.NewFaulty(budget.NewMemoryStore(nil))
	ledger, err := budget.NewLedger(faulty, nil)
	if err != nil {
		panic(err)
	}
	scope := budget.Scope{Project: "blog", Provider: "cloud"}

	faulty.Inject("Reserve", budgettest.LoseReply)
	_, err = ledger.Reserve(ctx, scope, budget.USD(4000), "deploy-1", nil)
	fmt.Println("first try fails closed:", errors.Is(err, budget.ErrStore))

	hold, err := ledger.Reserve(ctx, scope, budget.USD(4000), "deploy-1", nil)
	if err != nil {
		panic(err)
	}
	usage, err := ledger.Usage(ctx, scope)
	if err != nil {
		panic(err)
	}
	fmt.Println("retry gets the hold:", hold.Amount, hold.State)
	fmt.Println("remaining:", *usage.Remaining)
	// Output:
	// first try fails closed: true
	// retry gets the hold: 40.00 USD active
	// remaining: 60.00 USD
}

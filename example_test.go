package agentprov_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/catalogschema"
)

// The agent picks a service by ref; the orchestrator reserves its price under
// the user's caps before anything is provisioned. The default cap is $100 per
// provider per month, so a second, larger purchase is refused.
func Example() {
	ctx := context.Background()

	ref, err := catalogschema.ParseRef("cloudflare/registrar:domain")
	if err != nil {
		panic(err)
	}
	ledger, err := budget.NewLedger(nil, nil) // in-memory store, default caps
	if err != nil {
		panic(err)
	}
	scope := budget.Scope{Project: "blog", Provider: ref.Provider}

	hold, err := ledger.Reserve(ctx, scope, budget.USD(1299), "order-1", &budget.ReserveOptions{Service: ref.Service})
	if err != nil {
		panic(err)
	}
	if _, err := ledger.Commit(ctx, hold.ID, budget.USD(1299)); err != nil {
		panic(err)
	}
	fmt.Println("bought", ref, "for", hold.Amount)

	_, err = ledger.Reserve(ctx, scope, budget.USD(9000), "order-2", nil)
	fmt.Println("second purchase refused by the cap:", errors.Is(err, budget.ErrCapExceeded))

	usage, err := ledger.Usage(ctx, scope)
	if err != nil {
		panic(err)
	}
	fmt.Println("remaining this month:", *usage.Remaining)
	// Output:
	// bought cloudflare/registrar:domain for 12.99 USD
	// second purchase refused by the cap: true
	// remaining this month: 87.01 USD
}

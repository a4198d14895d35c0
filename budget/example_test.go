package budget_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentprov/agentprov/budget"
)

// fixedNow pins the examples' clock.
func fixedNow() time.Time { return time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC) }

func Example() {
	ctx := context.Background()
	ledger, err := budget.NewLedger(nil, &budget.LedgerOptions{Now: fixedNow}) // in memory, $100/provider/month
	if err != nil {
		panic(err)
	}
	scope := budget.Scope{Project: "proj_42", Provider: "cloudflare"}

	// Reserve before minting a payment token; retry with the same key.
	hold, err := ledger.Reserve(ctx, scope, budget.USD(1299), "order-7f3a", &budget.ReserveOptions{Service: "registrar:domain"})
	if err != nil {
		panic(err)
	}
	fmt.Println(hold.State, hold.Amount)

	// The provider charged less than held: the remainder returns at once.
	hold, err = ledger.Commit(ctx, hold.ID, budget.USD(1050))
	if err != nil {
		panic(err)
	}
	fmt.Println(hold.State, hold.Committed)

	u, err := ledger.Usage(ctx, scope)
	if err != nil {
		panic(err)
	}
	fmt.Println("remaining:", *u.Remaining)
	// Output:
	// active 12.99 USD
	// committed 10.50 USD
	// remaining: 89.50 USD
}

func ExampleLedger_Reserve_capExceeded() {
	ctx := context.Background()
	ledger, _ := budget.NewLedger(nil, &budget.LedgerOptions{Now: fixedNow})
	scope := budget.Scope{Project: "proj_42", Provider: "neon"}

	if _, err := ledger.Reserve(ctx, scope, budget.USD(8000), "db-1", nil); err != nil {
		panic(err)
	}
	_, err := ledger.Reserve(ctx, scope, budget.USD(3000), "db-2", nil)
	var ce *budget.CapError
	if errors.As(err, &ce) {
		fmt.Println(errors.Is(err, budget.ErrCapExceeded), ce.Counter.Window, "remaining", ce.Remaining())
	}
	code, status := budget.Code(err)
	fmt.Println(code, status)
	// Output:
	// true month:2026-11 remaining 2000
	// cap_exceeded 403
}

func ExampleLedger_SetCap() {
	ctx := context.Background()
	ledger, _ := budget.NewLedger(nil, &budget.LedgerOptions{Now: fixedNow})
	raise := budget.CapChange{Project: "proj_42", Provider: "neon", Limit: budget.USD(25000), Reason: "launch week"}

	// The agent may not raise a cap.
	raise.By = budget.Principal{Kind: budget.PrincipalAgent, ID: "agent-1"}
	_, err := ledger.SetCap(ctx, raise)
	fmt.Println(errors.Is(err, budget.ErrNotAuthorized))

	// The user may; the change is recorded.
	raise.By = budget.Principal{Kind: budget.PrincipalUser, ID: "usr_9"}
	if _, err := ledger.SetCap(ctx, raise); err != nil {
		panic(err)
	}
	hist, _ := ledger.CapHistory(ctx, "proj_42")
	for _, r := range hist {
		fmt.Println(r.Key.Provider, r.Key.Period, r.Limit, "by", r.By.Kind, r.By.ID, "at", r.At.Format(time.RFC3339))
	}
	// Output:
	// true
	// neon month 250.00 USD by user usr_9 at 2026-11-10T12:00:00Z
}

func ExampleLedger_ReportUsage() {
	ctx := context.Background()
	ledger, _ := budget.NewLedger(nil, &budget.LedgerOptions{
		Now: fixedNow,
		Alerts: func(_ context.Context, a budget.Alert) {
			fmt.Println("alert:", a.Kind, a.Threshold, a.Counter.Window)
		},
	})
	scope := budget.Scope{Project: "proj_42", Provider: "modal"}

	// Usage billed in arrears counts, is applied once per key, and is
	// never refused: the money is spent.
	for i := 0; i < 2; i++ {
		res, err := ledger.ReportUsage(ctx, budget.UsageReport{Key: "modal-inv-1", Scope: scope, Amount: budget.USD(10400)})
		if err != nil {
			panic(err)
		}
		fmt.Println("replayed:", res.Replayed, "overrun:", len(res.Overrun))
	}
	// The overrun blocks further reservations.
	_, err := ledger.Reserve(ctx, scope, budget.USD(1), "gpu-1", nil)
	fmt.Println(errors.Is(err, budget.ErrCapExceeded))
	// Output:
	// alert: threshold 50 month:2026-11
	// alert: threshold 80 month:2026-11
	// alert: threshold 100 month:2026-11
	// alert: overrun 100 month:2026-11
	// replayed: false overrun: 1
	// replayed: true overrun: 1
	// true
}

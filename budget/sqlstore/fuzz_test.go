package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// FuzzReserveRoundTrip feeds the store (below the Ledger's validation)
// arbitrary text and amounts: it either refuses them with a contract error
// or stores them exactly, so that reading and replaying return the same
// bytes. Nothing reaches the database as a failure.
func FuzzReserveRoundTrip(f *testing.F) {
	f.Add("k1", "p", "acme", "registrar:domain", "example.com", int64(1299), int64(10000))
	f.Add("k'; DROP TABLE agentprov_budget_holds; --", "p", "", "", "", int64(1), int64(-1))
	f.Add("ключ", "проект", "acme", "svc", "memo\x00with nul", int64(0), int64(0))
	f.Add("k", "p", "acme", "", "\xff\xfe", int64(9223372036854775807), int64(9223372036854775807))
	f.Add("$1", "?1", "%", "_", "\\", int64(-5), int64(5))
	db := sqltest.SQLite(f, sqltest.SQLitePath(f))
	s, err := sqlstore.New(context.Background(), db, sqlstore.SQLite, nil)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, key, project, provider, service, memo string, amount, limit int64) {
		// Sums of amounts must fit in BIGINT; keep inputs where they do
		// (an overflow is refused as a store failure, which fails closed).
		amount %= 1e15
		limit %= 1e15
		scope := budget.Scope{Project: project, Provider: provider}
		var dflt *budget.Money
		if limit >= 0 {
			dflt = &budget.Money{Amount: limit, Currency: "USD"}
		}
		req := &budget.ReserveRequest{
			HoldID: "h" + key, Key: key, Scope: scope, Service: service, Memo: memo,
			Amount: budget.Money{Amount: amount, Currency: "USD"},
			Checks: []budget.CapCheck{
				{Counter: budget.Counter{Project: project, Provider: provider, Window: "month:2026-11"}, Default: dflt},
				{Counter: budget.Counter{Project: project, Window: "month:2026-11"}},
			},
			Now: now, ExpiresAt: now.Add(time.Hour), RequestHash: fmt.Sprintf("%q %q %q %q %d", project, provider, service, memo, amount),
		}
		if provider == "" {
			req.Checks = req.Checks[1:]
		}
		ctx := t.Context()
		h, replayed, err := s.Reserve(ctx, req)
		var be *budget.Error
		var ce *budget.CapError
		switch {
		case errors.As(err, &ce):
			if limit < 0 || ce.Used <= limit-amount || ce.Requested != amount {
				t.Fatalf("refused %d under limit %d: %+v", amount, limit, ce)
			}
			return
		case errors.As(err, &be):
			if be.Code == budget.ErrIdempotencyConflict.Code {
				return // an earlier input used this key for another request
			}
			if be.Code != budget.ErrInvalidRequest.Code && be.Code != budget.ErrInvalidAmount.Code {
				t.Fatalf("Reserve: %v", err)
			}
			return
		case err != nil:
			t.Fatalf("Reserve failed as a store failure: %v", err)
		}
		if h.Key != key || h.Scope != scope || h.Service != service || h.Memo != memo || h.Amount.Amount != amount {
			t.Fatalf("Reserve returned %+v for key %q scope %v service %q memo %q amount %d", h, key, scope, service, memo, amount)
		}
		got, err := s.Hold(ctx, h.ID)
		if err != nil || got != h {
			t.Fatalf("Hold = %+v, %v; want %+v", got, err, h)
		}
		again, replayed, err := s.Reserve(ctx, req)
		if err != nil || !replayed || again != h {
			t.Fatalf("replay = %+v, %v, %v; want %+v", again, replayed, err, h)
		}
	})
}

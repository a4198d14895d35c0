package budget_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/budget"
)

func TestNewLedgerValidates(t *testing.T) {
	for name, o := range map[string]budget.LedgerOptions{
		"currency":        {DefaultProviderCap: budget.Money{Amount: 100, Currency: "usd"}},
		"negative cap":    {DefaultProviderCap: budget.USD(-1)},
		"period":          {Period: "day"},
		"project period":  {ProjectPeriod: "fortnight"},
		"project cap cur": {DefaultProjectCap: &budget.Money{Amount: 1, Currency: "EUR"}},
		"ceiling cur":     {CallCeiling: &budget.Money{Amount: 1, Currency: "EUR"}},
		"ttl":             {DefaultTTL: -time.Second},
		"ttl over max":    {DefaultTTL: 2 * time.Hour, MaxTTL: time.Hour},
		"threshold":       {Thresholds: []int{0}},
	} {
		if _, err := budget.NewLedger(nil, &o); err == nil {
			t.Errorf("%s: NewLedger accepted %+v", name, o)
		}
	}
	l, err := budget.NewLedger(nil, &budget.LedgerOptions{DefaultProviderCap: budget.Money{Amount: 5000, Currency: "EUR"}})
	if err != nil || l.Currency() != "EUR" {
		t.Fatalf("EUR ledger: %v", err)
	}
	if _, err := l.Reserve(context.Background(), budget.Scope{Project: "p", Provider: "x"}, budget.USD(1), "k", nil); !errors.Is(err, budget.ErrCurrencyMismatch) {
		t.Fatalf("USD on an EUR ledger: %v", err)
	}
}

func TestReserveValidates(t *testing.T) {
	ctx := context.Background()
	l, _ := budget.NewLedger(nil, &budget.LedgerOptions{Now: fixedNow})
	ok := budget.Scope{Project: "proj_42", Provider: "neon"}
	long := strings.Repeat("a", 256)
	for name, call := range map[string]func() error{
		"project slash": func() error {
			_, err := l.Reserve(ctx, budget.Scope{Project: "a/b", Provider: "neon"}, budget.USD(1), "k", nil)
			return err
		},
		"project empty": func() error {
			_, err := l.Reserve(ctx, budget.Scope{Provider: "neon"}, budget.USD(1), "k", nil)
			return err
		},
		"provider upper": func() error {
			_, err := l.Reserve(ctx, budget.Scope{Project: "p", Provider: "Neon"}, budget.USD(1), "k", nil)
			return err
		},
		"provider dash": func() error {
			_, err := l.Reserve(ctx, budget.Scope{Project: "p", Provider: "-x"}, budget.USD(1), "k", nil)
			return err
		},
		"key empty": func() error { _, err := l.Reserve(ctx, ok, budget.USD(1), "", nil); return err },
		"key space": func() error { _, err := l.Reserve(ctx, ok, budget.USD(1), "a b", nil); return err },
		"key long":  func() error { _, err := l.Reserve(ctx, ok, budget.USD(1), long, nil); return err },
		"service": func() error {
			_, err := l.Reserve(ctx, ok, budget.USD(1), "k", &budget.ReserveOptions{Service: "Bad Service"})
			return err
		},
		"memo": func() error {
			_, err := l.Reserve(ctx, ok, budget.USD(1), "k", &budget.ReserveOptions{Memo: strings.Repeat("m", 1025)})
			return err
		},
		"memo utf8": func() error {
			_, err := l.Reserve(ctx, ok, budget.USD(1), "k", &budget.ReserveOptions{Memo: "\xff"})
			return err
		},
		"ttl negative": func() error {
			_, err := l.Reserve(ctx, ok, budget.USD(1), "k", &budget.ReserveOptions{TTL: -1})
			return err
		},
		"ttl too long": func() error {
			_, err := l.Reserve(ctx, ok, budget.USD(1), "k", &budget.ReserveOptions{TTL: 8 * 24 * time.Hour})
			return err
		},
		"ceiling EUR": func() error {
			_, err := l.Reserve(ctx, ok, budget.USD(1), "k", &budget.ReserveOptions{CallCeiling: &budget.Money{Amount: 9, Currency: "EUR"}})
			return err
		},
		"commit no id":    func() error { _, err := l.Commit(ctx, "", budget.USD(1)); return err },
		"commit negative": func() error { _, err := l.Commit(ctx, "h", budget.USD(-1)); return err },
		"reverse reason":  func() error { _, err := l.Reverse(ctx, "h", strings.Repeat("r", 1025)); return err },
		"cap no id": func() error {
			_, err := l.SetCap(ctx, budget.CapChange{Project: "p", Limit: budget.USD(1), By: budget.Principal{Kind: "user"}})
			return err
		},
		"cap kind": func() error {
			_, err := l.SetCap(ctx, budget.CapChange{Project: "p", Limit: budget.USD(1), By: budget.Principal{Kind: "robot", ID: "r"}})
			return err
		},
		"cap negative": func() error {
			_, err := l.SetCap(ctx, budget.CapChange{Project: "p", Limit: budget.USD(-1), By: budget.Principal{Kind: "user", ID: "u"}})
			return err
		},
		"cap period": func() error {
			_, err := l.SetCap(ctx, budget.CapChange{Project: "p", Period: "day", Limit: budget.USD(1), By: budget.Principal{Kind: "user", ID: "u"}})
			return err
		},
		"history project": func() error { _, err := l.CapHistory(ctx, ""); return err },
		"spend period":    func() error { _, err := l.SpendHistory(ctx, "p", "neon", "day"); return err },
		"usage zero":      func() error { _, err := l.ReportUsage(ctx, budget.UsageReport{Key: "u", Scope: ok}); return err },
	} {
		err := call()
		var e *budget.Error
		if !errors.As(err, &e) || e.Status == http.StatusServiceUnavailable || e.Detail == "" {
			t.Errorf("%s: %v; want a 4xx *budget.Error with detail", name, err)
		}
	}
	// Nothing was reserved by any of them.
	u, err := l.Usage(ctx, ok)
	if err != nil || u.Remaining == nil || u.Remaining.Amount != 10000 {
		t.Fatalf("usage after refusals = %+v, %v", u, err)
	}
}

func TestErrorCodes(t *testing.T) {
	for _, c := range []struct {
		err    error
		code   string
		status int
	}{
		{&budget.CapError{Limit: budget.USD(1)}, "cap_exceeded", 403},
		{budget.ErrCallCeiling, "call_ceiling_exceeded", 403},
		{budget.ErrHoldNotFound, "hold_not_found", 404},
		{budget.ErrHoldExpired, "hold_expired", 409},
		{budget.ErrHoldEnded, "hold_ended", 409},
		{budget.ErrCurrencyMismatch, "currency_mismatch", 400},
		{budget.ErrInvalidAmount, "invalid_amount", 400},
		{budget.ErrInvalidRequest, "invalid_request", 400},
		{budget.ErrIdempotencyConflict, "idempotency_conflict", 422},
		{budget.ErrNotAuthorized, "not_authorized", 403},
		{budget.ErrStore, "store_unavailable", 503},
		{errors.New("disk on fire"), "store_unavailable", 503},
	} {
		code, status := budget.Code(c.err)
		if code != c.code || status != c.status {
			t.Errorf("Code(%v) = %s %d; want %s %d", c.err, code, status, c.code, c.status)
		}
	}
	detailed := &budget.Error{Code: "hold_expired", Status: 409, Detail: "x"}
	if !errors.Is(detailed, budget.ErrHoldExpired) || errors.Is(detailed, budget.ErrHoldEnded) {
		t.Fatal("errors.Is by code is broken")
	}
}

func TestHoldAt(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		exp := t0.Add(time.Duration(rapid.Int64Range(1, 1e12).Draw(rt, "ttl")))
		h := budget.Hold{State: rapid.SampledFrom([]budget.HoldState{budget.HoldActive, budget.HoldCommitted, budget.HoldReleased}).Draw(rt, "state"),
			CreatedAt: t0, ExpiresAt: exp}
		now := t0.Add(time.Duration(rapid.Int64Range(0, 2e12).Draw(rt, "now")))
		got := h.At(now)
		switch {
		case h.State == budget.HoldActive && !now.Before(exp):
			if got.State != budget.HoldExpired || !got.EndedAt.Equal(exp) {
				rt.Fatalf("At(%v) = %+v; want expired at %v", now, got, exp)
			}
		case got != h:
			rt.Fatalf("At(%v) changed %+v into %+v", now, h, got)
		}
	})
}

func TestMoneyString(t *testing.T) {
	for m, want := range map[budget.Money]string{
		budget.USD(1299): "12.99 USD", budget.USD(5): "0.05 USD", budget.USD(-250): "-2.50 USD", {Amount: 0, Currency: "EUR"}: "0.00 EUR",
		{Amount: 1500, Currency: "JPY"}: "1500 JPY", {Amount: -7, Currency: "KRW"}: "-7 KRW",
		{Amount: 1250, Currency: "KWD"}: "1.250 KWD", {Amount: 5, Currency: "BHD"}: "0.005 BHD",
	} {
		if got := m.String(); got != want {
			t.Errorf("%#v.String() = %q; want %q", m, got, want)
		}
	}
}

// TestCapErrorMessageInMajorUnits: the message a person may read shows the
// amounts with their currency in major units (ISO 4217 exponent), never
// bare minor units.
func TestCapErrorMessageInMajorUnits(t *testing.T) {
	for _, c := range []struct {
		e    budget.CapError
		want string
	}{
		{budget.CapError{Counter: budget.Counter{Project: "p1", Provider: "cloud", Window: "month:2026-12"}, Limit: budget.USD(10000), Used: 9950, Requested: 5000},
			"budget: cap_exceeded: p1/cloud in month:2026-12: limit 100.00 USD, used 99.50 USD, requested 50.00 USD"},
		{budget.CapError{Counter: budget.Counter{Project: "p1", Window: "week:2026-W49"}, Limit: budget.Money{Amount: 5000, Currency: "JPY"}, Used: 4990, Requested: 20},
			"budget: cap_exceeded: p1 (project-wide) in week:2026-W49: limit 5000 JPY, used 4990 JPY, requested 20 JPY"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("CapError.Error() = %q\nwant %q", got, c.want)
		}
	}
}

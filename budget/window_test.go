package budget_test

import (
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/budget"
)

func mustLoad(t testing.TB, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("no time zone data for %s: %v", name, err)
	}
	return loc
}

func TestWindowOf(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	for _, c := range []struct {
		p    budget.Period
		t    time.Time
		loc  *time.Location
		want budget.Window
	}{
		// 23:59:59.999 on 30 November in Berlin is still November there, though
		// it is 22:59 UTC; one millisecond later it is December.
		{budget.Month, time.Date(2026, 11, 30, 22, 59, 59, 999_000_000, time.UTC), berlin, "month:2026-11"},
		{budget.Month, time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC), berlin, "month:2026-12"},
		{budget.Month, time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC), nil, "month:2026-11"},
		// ISO weeks: 3 January 2027 is in 2026-W53, 4 January in 2027-W01.
		{budget.Week, time.Date(2027, 1, 3, 23, 59, 59, 0, time.UTC), nil, "week:2026-W53"},
		{budget.Week, time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC), nil, "week:2027-W01"},
		{budget.Week, time.Date(2024, 12, 30, 0, 0, 0, 0, time.UTC), nil, "week:2025-W01"},
		{budget.Year, time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC), berlin, "year:2027"},
		// The DST change in Berlin (29 March 2026) moves nothing.
		{budget.Month, time.Date(2026, 3, 31, 21, 59, 59, 0, time.UTC), berlin, "month:2026-03"},
		{budget.Month, time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC), berlin, "month:2026-04"},
	} {
		if got := budget.WindowOf(c.p, c.t, c.loc); got != c.want {
			t.Errorf("WindowOf(%s, %v, %v) = %s; want %s", c.p, c.t, c.loc, got, c.want)
		}
	}
}

func TestParseWindow(t *testing.T) {
	for _, ok := range []string{"month:2026-11", "week:2026-W53", "week:2027-W01", "year:2026", "month:0001-01"} {
		if w, err := budget.ParseWindow(ok); err != nil || string(w) != ok {
			t.Errorf("ParseWindow(%q) = %q, %v", ok, w, err)
		}
	}
	for _, bad := range []string{"", "month", "month:", "month:2026-13", "month:2026-00", "month:2026-1", "month:26-11",
		"week:2027-W53", "week:2026-W54", "week:2026-W00", "week:2026-53", "year:26", "year:+026", "day:2026-01-01",
		"Month:2026-11", "month:2026-11 ", "year:20261"} {
		if _, err := budget.ParseWindow(bad); !errors.Is(err, budget.ErrInvalidRequest) {
			t.Errorf("ParseWindow(%q): %v; want ErrInvalidRequest", bad, err)
		}
	}
}

// Every instant lies in exactly one window per period, whose bounds are
// exact: the first and last instants are in it, the next is not.
func TestWindowBoundsProperty(t *testing.T) {
	locs := []*time.Location{time.UTC, mustLoad(t, "Europe/Berlin"), mustLoad(t, "America/New_York"),
		mustLoad(t, "Asia/Kolkata"), mustLoad(t, "Australia/Lord_Howe"), mustLoad(t, "America/Sao_Paulo")}
	rapid.Check(t, func(rt *rapid.T) {
		loc := rapid.SampledFrom(locs).Draw(rt, "loc")
		p := rapid.SampledFrom([]budget.Period{budget.Week, budget.Month, budget.Year}).Draw(rt, "period")
		at := time.Unix(rapid.Int64Range(0, 4102444800).Draw(rt, "unix"), rapid.Int64Range(0, 999_999_999).Draw(rt, "ns"))
		w := budget.WindowOf(p, at, loc)
		if w.Period() != p {
			rt.Fatalf("period of %s is %s", w, w.Period())
		}
		if pw, err := budget.ParseWindow(string(w)); err != nil || pw != w {
			rt.Fatalf("ParseWindow(%s) = %s, %v", w, pw, err)
		}
		start, end, err := w.Bounds(loc)
		if err != nil {
			rt.Fatal(err)
		}
		if at.Before(start) || !at.Before(end) {
			rt.Fatalf("%v is outside %s = [%v, %v)", at, w, start, end)
		}
		if budget.WindowOf(p, start, loc) != w || budget.WindowOf(p, end.Add(-time.Nanosecond), loc) != w {
			rt.Fatalf("%s: bounds [%v, %v) are not inside it", w, start, end)
		}
		if next := budget.WindowOf(p, end, loc); next == w || next < w {
			rt.Fatalf("%s: the instant after is in %s", w, next)
		}
	})
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"month:2026-11", "week:2026-W53", "year:2026", "week:2027-W53", "month:9999-12", ":", "week:-W"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := budget.ParseWindow(s)
		if err != nil {
			if !errors.Is(err, budget.ErrInvalidRequest) {
				t.Fatalf("error %v is not ErrInvalidRequest", err)
			}
			return
		}
		start, end, err := w.Bounds(time.UTC)
		if err != nil || !start.Before(end) {
			t.Fatalf("%q parsed but bounds are [%v, %v), %v", s, start, end, err)
		}
		if got := budget.WindowOf(w.Period(), start, time.UTC); got != w {
			t.Fatalf("%q: its start is in %s", s, got)
		}
	})
}

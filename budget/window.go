package budget

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// WindowOf returns the window of period p containing t in loc (UTC when nil).
func WindowOf(p Period, t time.Time, loc *time.Location) Window {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	switch p {
	case Week:
		y, w := t.ISOWeek()
		return Window(fmt.Sprintf("week:%04d-W%02d", y, w))
	case Month:
		return Window(fmt.Sprintf("month:%04d-%02d", t.Year(), int(t.Month())))
	case Year:
		return Window(fmt.Sprintf("year:%04d", t.Year()))
	}
	return ""
}

// Bounds returns the instants [start, end) of window w in loc (UTC when
// nil). Boundaries are local midnights, so a day of a DST change is 23 or 25
// hours long and rollover stays exact.
func (w Window) Bounds(loc *time.Location) (start, end time.Time, err error) {
	if loc == nil {
		loc = time.UTC
	}
	p, rest, ok := strings.Cut(string(w), ":")
	bad := func() (time.Time, time.Time, error) {
		return time.Time{}, time.Time{}, errorf(ErrInvalidRequest, "malformed window %q", string(w))
	}
	if !ok {
		return bad()
	}
	num := func(s string) (int, bool) {
		if s == "" || len(s) > 4 {
			return 0, false
		}
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
		}
		n, err := strconv.Atoi(s)
		return n, err == nil
	}
	switch Period(p) {
	case Year:
		y, ok := num(rest)
		if !ok || len(rest) != 4 {
			return bad()
		}
		return time.Date(y, 1, 1, 0, 0, 0, 0, loc), time.Date(y+1, 1, 1, 0, 0, 0, 0, loc), nil
	case Month:
		ys, ms, ok := strings.Cut(rest, "-")
		y, ok1 := num(ys)
		m, ok2 := num(ms)
		if !ok || !ok1 || !ok2 || len(ys) != 4 || len(ms) != 2 || m < 1 || m > 12 {
			return bad()
		}
		return time.Date(y, time.Month(m), 1, 0, 0, 0, 0, loc), time.Date(y, time.Month(m)+1, 1, 0, 0, 0, 0, loc), nil
	case Week:
		ys, ws, ok := strings.Cut(rest, "-W")
		y, ok1 := num(ys)
		wk, ok2 := num(ws)
		if !ok || !ok1 || !ok2 || len(ys) != 4 || len(ws) != 2 || wk < 1 || wk > 53 {
			return bad()
		}
		// ISO week 1 is the week holding 4 January.
		jan4 := time.Date(y, 1, 4, 0, 0, 0, 0, loc)
		off := (int(jan4.Weekday()) + 6) % 7 // days since Monday
		start := time.Date(y, 1, 4-off+7*(wk-1), 0, 0, 0, 0, loc)
		if sy, sw := start.ISOWeek(); sy != y || sw != wk {
			return bad() // week 53 of a 52-week year
		}
		return start, time.Date(start.Year(), start.Month(), start.Day()+7, 0, 0, 0, 0, loc), nil
	}
	return bad()
}

// ParseWindow parses and validates a window name such as "month:2026-11".
func ParseWindow(s string) (Window, error) {
	w := Window(s)
	if _, _, err := w.Bounds(time.UTC); err != nil {
		return "", err
	}
	return w, nil
}

// windowSet is the three windows containing an instant, valid over
// [from, until) so that the common case reuses it without formatting.
type windowSet struct {
	from, until time.Time
	w           [len(periods)]Window
}

// windowCache remembers the last computed windowSet. Safe for concurrent use.
type windowCache struct {
	loc *time.Location
	cur atomic.Pointer[windowSet]
}

func (c *windowCache) at(t time.Time) *windowSet {
	if s := c.cur.Load(); s != nil && !t.Before(s.from) && t.Before(s.until) {
		return s
	}
	s := c.compute(t)
	c.cur.Store(s)
	return s
}

// lookup is at without replacing the cached set: for instants in the past
// (a hold's creation, a usage report's time).
func (c *windowCache) lookup(t time.Time) *windowSet {
	if s := c.cur.Load(); s != nil && !t.Before(s.from) && t.Before(s.until) {
		return s
	}
	return c.compute(t)
}

func (c *windowCache) compute(t time.Time) *windowSet {
	s := &windowSet{}
	for i, p := range periods {
		s.w[i] = WindowOf(p, t, c.loc)
		start, end, err := s.w[i].Bounds(c.loc)
		if err != nil {
			// Years outside 0000–9999 have no window name; never cache them.
			return &windowSet{from: t, until: t, w: s.w}
		}
		if i == 0 || start.After(s.from) {
			s.from = start
		}
		if i == 0 || end.Before(s.until) {
			s.until = end
		}
	}
	return s
}

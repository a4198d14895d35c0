package budgettest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/clock"
)

// ModelRounder is implemented by harnesses that want RunModel to run a
// different number of rounds than the default (10, or 2 with -short). Each
// round is one rapid.Check: by default 100 random sequences of about 30
// operations. Slow stores (fsync on every commit) may ask for fewer.
type ModelRounder interface {
	ModelRounds(short bool) int
}

var modelSeq atomic.Int64

// RunModel runs only the rapid state-machine test of the store against a
// simple model. Run includes it.
//
// Random sequences of reserve, commit, release, reverse, expiry, usage
// reports, cap changes, clock advances and (where supported) reopen are
// applied to a Ledger over the store and to an explicit model. Every result
// must match the model exactly: which reservations are granted and which cap
// refuses, each hold's state and end time, every counter, and replays. So
// committed plus active holds never exceed any cap except by cap lowering
// or usage in arrears, every hold ends exactly once, and idempotent replays
// return identical results.
func RunModel(t *testing.T, mk HarnessMaker) {
	ctx := t.Context()
	h, err := mk(ctx, t)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(h.Close)
	rounds := 10
	if testing.Short() {
		rounds = 2
	}
	if r, ok := h.(ModelRounder); ok {
		rounds = r.ModelRounds(testing.Short())
	}
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		loc = time.UTC
	}
	store := h.Store()
	for i := 0; i < rounds; i++ {
		rapid.Check(t, func(rt *rapid.T) {
			m := newModel(ctx, rt, h, store, loc)
			rt.Repeat(m.actions())
			store = m.store // keep a reopened store for the next round
		})
	}
}

var (
	modelProviders = []string{"acme", "bolt"}
	modelTTLs      = []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 2 * 24 * time.Hour}
	modelSteps     = []time.Duration{time.Second, time.Minute, 10 * time.Minute, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 31 * 24 * time.Hour}
)

const (
	modelProviderCap = 1000
	modelProjectCap  = 1500
)

type mHold struct {
	id        string
	key       string
	scope     budget.Scope
	amount    int64
	committed int64
	state     budget.HoldState
	created   time.Time
	expires   time.Time
	ended     time.Time
	reason    string
}

type mUsage struct {
	scope  budget.Scope
	amount int64
	at     time.Time
}

type model struct {
	ctx     context.Context
	t       *rapid.T
	h       Harness
	store   budget.Store
	loc     *time.Location
	clk     *clock.Fake
	l       *budget.Ledger
	opts    budget.LedgerOptions
	project string
	holds   []*mHold
	byKey   map[string]*mHold
	usage   map[string]mUsage
	caps    map[budget.CapKey]int64
	lowered map[budget.CapKey]bool // a cap was set below one in force before
	alerts  map[string]bool
}

func newModel(ctx context.Context, t *rapid.T, h Harness, store budget.Store, loc *time.Location) *model {
	m := &model{
		ctx: ctx, t: t, h: h, store: store, loc: loc,
		project: fmt.Sprintf("model-%d-%d", time.Now().UnixNano(), modelSeq.Add(1)),
		byKey:   map[string]*mHold{},
		usage:   map[string]mUsage{},
		caps:    map[budget.CapKey]int64{},
		lowered: map[budget.CapKey]bool{},
		alerts:  map[string]bool{},
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	m.clk = clock.NewFake(base.Add(time.Duration(rapid.Int64Range(0, 365*24*3600).Draw(t, "start")) * time.Second))
	pc := budget.USD(modelProjectCap)
	m.opts = budget.LedgerOptions{
		Now: m.clk.Now, Location: loc,
		DefaultProviderCap: budget.USD(modelProviderCap),
		DefaultProjectCap:  &pc,
		Alerts:             m.alert,
	}
	m.ledger()
	return m
}

func (m *model) ledger() {
	l, err := budget.NewLedger(m.store, &m.opts)
	if err != nil {
		m.t.Fatalf("NewLedger: %v", err)
	}
	m.l = l
}

func (m *model) alert(_ context.Context, a budget.Alert) {
	k := fmt.Sprintf("%v/%s/%d", a.Counter, a.Kind, a.Threshold)
	if m.alerts[k] {
		m.t.Fatalf("alert delivered twice: %+v", a)
	}
	m.alerts[k] = true
}

func (m *model) scope(provider string) budget.Scope {
	return budget.Scope{Project: m.project, Provider: provider}
}

// normalize expires the model's holds whose time has come.
func (m *model) normalize() {
	now := m.clk.Now()
	for _, h := range m.holds {
		if h.state == budget.HoldActive && !now.Before(h.expires) {
			h.state, h.ended = budget.HoldExpired, h.expires
		}
	}
}

var checkPeriods = []budget.Period{budget.Week, budget.Month, budget.Year}

// counters lists the counters a hold on provider at t counts in, in the
// order the Ledger checks them.
func (m *model) counters(provider string, t time.Time) []budget.Counter {
	var out []budget.Counter
	for _, prov := range []string{provider, ""} {
		for _, p := range checkPeriods {
			out = append(out, budget.Counter{Project: m.project, Provider: prov, Window: budget.WindowOf(p, t, m.loc)})
		}
	}
	return out
}

func (m *model) limit(c budget.Counter) (int64, bool) {
	if v, ok := m.caps[c.Cap()]; ok {
		return v, true
	}
	switch {
	case c.Provider != "" && c.Window.Period() == budget.Month:
		return modelProviderCap, true
	case c.Provider == "" && c.Window.Period() == budget.Month:
		return modelProjectCap, true
	}
	return 0, false
}

func inCounter(c budget.Counter, scope budget.Scope, t time.Time, loc *time.Location) bool {
	return (c.Provider == "" || c.Provider == scope.Provider) && budget.WindowOf(c.Window.Period(), t, loc) == c.Window
}

// usageOf computes a counter from the model.
func (m *model) usageOf(c budget.Counter) (committed, held, arrears int64) {
	for _, h := range m.holds {
		if !inCounter(c, h.scope, h.created, m.loc) {
			continue
		}
		switch h.state {
		case budget.HoldActive:
			held += h.amount
		case budget.HoldCommitted:
			committed += h.committed
		}
	}
	for _, u := range m.usage {
		if inCounter(c, u.scope, u.at, m.loc) {
			arrears += u.amount
		}
	}
	return
}

func (m *model) pickHold(t *rapid.T) string {
	if len(m.holds) == 0 || rapid.IntRange(0, 15).Draw(t, "unknown") == 0 {
		return "hold_unknown"
	}
	return rapid.SampledFrom(m.holds).Draw(t, "hold").id
}

func (m *model) find(id string) *mHold {
	for _, h := range m.holds {
		if h.id == id {
			return h
		}
	}
	return nil
}

// wantErr fails unless err matches want (nil: no error).
func (m *model) wantErr(op string, err, want error) {
	m.t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		m.t.Fatalf("%s: error %v; model expects %v", op, err, want)
	}
}

// sameAsModel fails unless the store's hold h matches the model's mh.
func (m *model) sameAsModel(op string, h budget.Hold, mh *mHold) {
	m.t.Helper()
	if h.ID != mh.id || h.Key != mh.key || h.Scope != mh.scope || h.Amount.Amount != mh.amount || h.State != mh.state ||
		h.Committed.Amount != mh.committed || !h.CreatedAt.Equal(mh.created) || !h.ExpiresAt.Equal(mh.expires) ||
		!h.EndedAt.Equal(mh.ended) || h.Reason != mh.reason {
		m.t.Fatalf("%s: store has %+v; model has %+v", op, h, *mh)
	}
}

func (m *model) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"reserve": m.reserve,
		"commit":  m.commit,
		"release": m.release,
		"reverse": m.reverse,
		"usage":   m.report,
		"cap":     m.setCap,
		"advance": m.advance,
		"reopen":  m.reopen,
		"":        m.check,
	}
}

func (m *model) reserve(t *rapid.T) {
	key := fmt.Sprintf("%s-k%d", m.project, rapid.IntRange(0, 11).Draw(t, "key"))
	scope := m.scope(rapid.SampledFrom(modelProviders).Draw(t, "provider"))
	amount := rapid.Int64Range(1, 600).Draw(t, "amount")
	ttl := rapid.SampledFrom(modelTTLs).Draw(t, "ttl")
	m.normalize()
	h, err := m.l.Reserve(m.ctx, scope, budget.USD(amount), key, &budget.ReserveOptions{TTL: ttl})
	if old := m.byKey[key]; old != nil {
		if old.scope != scope || old.amount != amount {
			m.wantErr("reserve with a reused key", err, budget.ErrIdempotencyConflict)
			return
		}
		m.wantErr("reserve replay", err, nil)
		m.sameAsModel("reserve replay", h, old)
		return
	}
	now := m.clk.Now()
	for _, c := range m.counters(scope.Provider, now) {
		lim, ok := m.limit(c)
		if !ok {
			continue
		}
		committed, held, arrears := m.usageOf(c)
		if used := committed + held + arrears; used+amount > lim {
			var ce *budget.CapError
			if !errors.As(err, &ce) || ce.Counter != c || ce.Used != used || ce.Limit.Amount != lim || ce.Requested != amount {
				t.Fatalf("reserve %d on %v: got %v; model expects cap %v (limit %d, used %d) to refuse", amount, scope, err, c, lim, used)
			}
			return
		}
	}
	m.wantErr("reserve", err, nil)
	mh := &mHold{id: h.ID, key: key, scope: scope, amount: amount, state: budget.HoldActive, created: now, expires: now.Add(ttl)}
	m.sameAsModel("reserve", h, mh)
	m.holds = append(m.holds, mh)
	m.byKey[key] = mh
}

func (m *model) commit(t *rapid.T) {
	id := m.pickHold(t)
	actual := rapid.Int64Range(0, 650).Draw(t, "actual")
	m.normalize()
	h, err := m.l.Commit(m.ctx, id, budget.USD(actual))
	mh := m.find(id)
	switch {
	case mh == nil:
		m.wantErr("commit unknown", err, budget.ErrHoldNotFound)
		return
	case mh.state == budget.HoldCommitted && mh.committed != actual:
		m.wantErr("commit again, other amount", err, budget.ErrIdempotencyConflict)
	case mh.state == budget.HoldCommitted:
		m.wantErr("commit replay", err, nil)
	case mh.state == budget.HoldExpired:
		m.wantErr("commit expired", err, budget.ErrHoldExpired)
	case mh.state != budget.HoldActive:
		m.wantErr("commit ended", err, budget.ErrHoldEnded)
	case actual > mh.amount:
		m.wantErr("commit above held", err, budget.ErrInvalidAmount)
		if h.ID != "" {
			m.sameAsModel("commit above held", h, mh)
		}
		return
	default:
		m.wantErr("commit", err, nil)
		mh.state, mh.committed, mh.ended = budget.HoldCommitted, actual, m.clk.Now()
	}
	m.sameAsModel("commit", h, mh)
}

func (m *model) release(t *rapid.T) {
	id := m.pickHold(t)
	m.normalize()
	h, err := m.l.Release(m.ctx, id)
	mh := m.find(id)
	switch {
	case mh == nil:
		m.wantErr("release unknown", err, budget.ErrHoldNotFound)
		return
	case mh.state == budget.HoldActive:
		m.wantErr("release", err, nil)
		mh.state, mh.ended = budget.HoldReleased, m.clk.Now()
	case mh.state == budget.HoldReleased || mh.state == budget.HoldExpired:
		m.wantErr("release replay", err, nil)
	default:
		m.wantErr("release ended", err, budget.ErrHoldEnded)
	}
	m.sameAsModel("release", h, mh)
}

func (m *model) reverse(t *rapid.T) {
	id := m.pickHold(t)
	m.normalize()
	h, err := m.l.Reverse(m.ctx, id, "refused")
	mh := m.find(id)
	switch {
	case mh == nil:
		m.wantErr("reverse unknown", err, budget.ErrHoldNotFound)
		return
	case mh.state == budget.HoldCommitted:
		m.wantErr("reverse", err, nil)
		mh.state, mh.reason = budget.HoldReversed, "refused"
	case mh.state == budget.HoldReversed:
		m.wantErr("reverse replay", err, nil)
	case mh.state == budget.HoldExpired:
		m.wantErr("reverse expired", err, budget.ErrHoldExpired)
	default:
		m.wantErr("reverse ended", err, budget.ErrHoldEnded)
	}
	m.sameAsModel("reverse", h, mh)
}

func (m *model) report(t *rapid.T) {
	key := fmt.Sprintf("%s-u%d", m.project, rapid.IntRange(0, 5).Draw(t, "key"))
	scope := m.scope(rapid.SampledFrom(modelProviders).Draw(t, "provider"))
	amount := rapid.Int64Range(1, 800).Draw(t, "amount")
	at := m.clk.Now().Add(-time.Duration(rapid.Int64Range(0, 3*24*3600).Draw(t, "ago")) * time.Second)
	res, err := m.l.ReportUsage(m.ctx, budget.UsageReport{Key: key, Scope: scope, Amount: budget.USD(amount), At: at})
	if old, ok := m.usage[key]; ok {
		if old.scope != scope || old.amount != amount || !old.at.Equal(at) {
			m.wantErr("usage with a reused key", err, budget.ErrIdempotencyConflict)
			return
		}
		m.wantErr("usage replay", err, nil)
		if !res.Replayed {
			t.Fatalf("usage replay not reported as replayed")
		}
		return
	}
	m.wantErr("usage", err, nil)
	if res.Replayed || res.Entry.Amount.Amount != amount || !res.Entry.At.Equal(at) {
		t.Fatalf("usage = %+v", res)
	}
	m.usage[key] = mUsage{scope: scope, amount: amount, at: at}
	var over int
	m.normalize()
	for _, c := range m.counters(scope.Provider, at) {
		committed, _, arrears := m.usageOf(c)
		if lim, ok := m.limit(c); ok && committed+arrears > lim {
			over++
		}
	}
	if len(res.Overrun) != over {
		t.Fatalf("usage reported %d overruns; model expects %d: %+v", len(res.Overrun), over, res.Overrun)
	}
}

func (m *model) setCap(t *rapid.T) {
	provider := rapid.SampledFrom(append([]string{""}, modelProviders...)).Draw(t, "provider")
	period := rapid.SampledFrom(checkPeriods).Draw(t, "period")
	limit := rapid.Int64Range(0, 3000).Draw(t, "limit")
	agent := rapid.IntRange(0, 5).Draw(t, "agent") == 0
	by := budget.Principal{Kind: budget.PrincipalUser, ID: "u"}
	if agent {
		by.Kind = budget.PrincipalAgent
	}
	rec, err := m.l.SetCap(m.ctx, budget.CapChange{Project: m.project, Provider: provider, Period: period, Limit: budget.USD(limit), By: by})
	if agent {
		m.wantErr("agent SetCap", err, budget.ErrNotAuthorized)
		return
	}
	m.wantErr("SetCap", err, nil)
	key := budget.CapKey{Project: m.project, Provider: provider, Period: period}
	if before, capped := m.limit(budget.Counter{Project: m.project, Provider: provider, Window: budget.WindowOf(period, m.clk.Now(), m.loc)}); !capped || limit < before {
		m.lowered[key] = true
	}
	old, had := m.caps[key]
	if had != (rec.Previous != nil) || had && rec.Previous.Amount != old {
		t.Fatalf("SetCap previous = %v; model has %d (set: %v)", rec.Previous, old, had)
	}
	m.caps[key] = limit
}

func (m *model) advance(t *rapid.T) {
	if rapid.Bool().Draw(t, "exact") {
		m.clk.Advance(rapid.SampledFrom(modelSteps).Draw(t, "step"))
		return
	}
	m.clk.Advance(time.Duration(rapid.Int64Range(0, 3*24*3600*1000).Draw(t, "ms")) * time.Millisecond)
}

func (m *model) reopen(t *rapid.T) {
	s, err := m.h.Reopen(m.ctx)
	if errors.Is(err, ErrReopenUnsupported) {
		t.Skip("reopen unsupported")
	}
	if err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	m.store = s
	m.ledger()
}

// check compares every counter and hold with the model.
func (m *model) check(t *rapid.T) {
	m.normalize()
	for _, prov := range modelProviders {
		u, err := m.l.Usage(m.ctx, m.scope(prov))
		if err != nil {
			t.Fatalf("Usage: %v", err)
		}
		for _, c := range u.Counters {
			committed, held, arrears := m.usageOf(c.Counter)
			if c.Committed != committed || c.Held != held || c.Arrears != arrears {
				t.Fatalf("counter %v: store %d/%d/%d (committed/held/arrears); model %d/%d/%d",
					c.Counter, c.Committed, c.Held, c.Arrears, committed, held, arrears)
			}
			lim, ok := m.limit(c.Counter)
			if ok != (c.Limit != nil) || ok && c.Limit.Amount != lim {
				t.Fatalf("counter %v: limit %v; model %d (%v)", c.Counter, c.Limit, lim, ok)
			}
			// The cap holds unless it was lowered or usage in arrears
			// (never refused) went over it.
			if ok && !m.lowered[c.Counter.Cap()] && c.Arrears == 0 && c.Used() > lim {
				t.Fatalf("counter %v: used %d exceeds the cap %d", c.Counter, c.Used(), lim)
			}
		}
	}
	for _, mh := range m.holds {
		h, err := m.l.Hold(m.ctx, mh.id)
		if err != nil {
			t.Fatalf("Hold(%s): %v", mh.id, err)
		}
		m.sameAsModel("Hold", h, mh)
	}
}

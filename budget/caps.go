package budget

import (
	"context"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/agentprov/agentprov/internal/wireid"
)

func checkScope(s Scope) error {
	if !validProjectID(s.Project) {
		return errorf(ErrInvalidRequest, "project %q: must be 1–128 of [A-Za-z0-9._-]", s.Project)
	}
	if !validProviderID(s.Provider) {
		return errorf(ErrInvalidRequest, "provider %q: must be 1–64 of [a-z0-9-] starting with a letter or digit", s.Provider)
	}
	return nil
}

func checkKey(k string) error {
	if k == "" || len(k) > 255 {
		return errorf(ErrInvalidRequest, "idempotency key: must be 1–255 bytes")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return errorf(ErrInvalidRequest, "idempotency key: must be printable ASCII without spaces")
		}
	}
	return nil
}

func validProjectID(s string) bool { return wireid.ProjectID(s) }

func validProviderID(s string) bool { return wireid.ProviderID(s) }

func validServiceID(s string) bool { return wireid.ServiceID(s) }

// CapChange is a request to set a cap. Only a user or an operator may make
// it; the caller authenticates By.
type CapChange struct {
	Project string
	// Provider names the provider whose cap changes; "" changes the
	// project-wide cap.
	Provider string
	// Period of the cap; empty means the Ledger's Period.
	Period Period
	// Limit is the new cap; zero blocks every new reservation.
	Limit  Money
	By     Principal
	Reason string
}

// SetCap sets a cap, raising or lowering it, and records who did it and when
// in the cap history. Agents are refused with ErrNotAuthorized: a cap is the
// user's decision. Lowering a cap below what is already spent keeps every
// past record and blocks new reservations in the window.
func (l *Ledger) SetCap(ctx context.Context, c CapChange) (CapRecord, error) {
	switch c.By.Kind {
	case PrincipalUser, PrincipalOperator:
	case PrincipalAgent:
		return CapRecord{}, errorf(ErrNotAuthorized, "agent %q may not change a cap; the user must", c.By.ID)
	default:
		return CapRecord{}, errorf(ErrNotAuthorized, "principal kind %q may not change a cap", c.By.Kind)
	}
	if c.By.ID == "" || len(c.By.ID) > 255 || !utf8.ValidString(c.By.ID) {
		return CapRecord{}, errorf(ErrInvalidRequest, "principal id: must be 1–255 bytes of UTF-8")
	}
	if !validProjectID(c.Project) {
		return CapRecord{}, errorf(ErrInvalidRequest, "project %q: must be 1–128 of [A-Za-z0-9._-]", c.Project)
	}
	if c.Provider != "" && !validProviderID(c.Provider) {
		return CapRecord{}, errorf(ErrInvalidRequest, "provider %q: not a provider id", c.Provider)
	}
	if c.Period == "" {
		c.Period = l.providerPer
		if c.Provider == "" {
			c.Period = l.projectPer
		}
	}
	if !c.Period.Valid() {
		return CapRecord{}, errorf(ErrInvalidRequest, "period %q: must be week, month or year", c.Period)
	}
	if err := l.checkMoney("limit", c.Limit, true); err != nil {
		return CapRecord{}, err
	}
	if len(c.Reason) > 1024 || !utf8.ValidString(c.Reason) {
		return CapRecord{}, errorf(ErrInvalidRequest, "reason: must be valid UTF-8 of at most 1024 bytes")
	}
	rec, err := l.store.SetCap(ctx, CapRecord{
		Key:    CapKey{Project: c.Project, Provider: c.Provider, Period: c.Period},
		Limit:  c.Limit,
		By:     c.By,
		Reason: c.Reason,
		At:     l.now(),
	})
	if err != nil {
		return CapRecord{}, storeErr(err)
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "budget: cap changed", slog.String("project", c.Project), slog.String("provider", c.Provider),
		slog.String("period", string(c.Period)), slog.Int64("limit", c.Limit.Amount), slog.String("by", string(c.By.Kind)+":"+c.By.ID))
	return rec, nil
}

// CapHistory returns every cap change of project, oldest first.
func (l *Ledger) CapHistory(ctx context.Context, project string) ([]CapRecord, error) {
	if !validProjectID(project) {
		return nil, errorf(ErrInvalidRequest, "project %q: must be 1–128 of [A-Za-z0-9._-]", project)
	}
	h, err := l.store.CapHistory(ctx, project)
	return h, storeErrOrNil(err)
}

func storeErrOrNil(err error) error {
	if err == nil {
		return nil
	}
	return storeErr(err)
}

// ScopeUsage is the state of every counter a reservation on Scope would
// count in, at At.
type ScopeUsage struct {
	Scope Scope     `json:"scope"`
	At    time.Time `json:"at"`
	// Counters are the provider's week, month and year counters, then the
	// project's.
	Counters []CounterUsage `json:"counters"`
	// Remaining is the most a reservation could hold now: the least room
	// left under any cap (never negative); nil when no cap applies.
	Remaining *Money `json:"remaining,omitempty"`
}

// Usage reports the usage and remaining amount of scope now.
func (l *Ledger) Usage(ctx context.Context, scope Scope) (ScopeUsage, error) {
	if err := checkScope(scope); err != nil {
		return ScopeUsage{}, err
	}
	now := l.now()
	cs, err := l.store.Usage(ctx, l.checksAt(scope, now), now)
	if err != nil {
		return ScopeUsage{}, storeErr(err)
	}
	u := ScopeUsage{Scope: scope, At: now, Counters: cs}
	for _, c := range cs {
		if c.Limit == nil {
			continue
		}
		r := max(0, c.Limit.Amount-c.Used())
		if u.Remaining == nil || r < u.Remaining.Amount {
			u.Remaining = &Money{Amount: r, Currency: l.currency}
		}
	}
	return u, nil
}

// SpendHistory returns the counter of (project, provider) in every window of
// period that saw a hold or usage, oldest first; provider "" means the
// project-wide counter. Limits are the caps in force now.
func (l *Ledger) SpendHistory(ctx context.Context, project, provider string, period Period) ([]CounterUsage, error) {
	if !validProjectID(project) {
		return nil, errorf(ErrInvalidRequest, "project %q: must be 1–128 of [A-Za-z0-9._-]", project)
	}
	if provider != "" && !validProviderID(provider) {
		return nil, errorf(ErrInvalidRequest, "provider %q: not a provider id", provider)
	}
	if !period.Valid() {
		return nil, errorf(ErrInvalidRequest, "period %q: must be week, month or year", period)
	}
	ws, err := l.store.Windows(ctx, project, provider, period, l.now())
	if err != nil {
		return nil, storeErr(err)
	}
	def := l.projectCap
	if provider != "" {
		def = nil
		if period == l.providerPer {
			def = &l.providerCap
		}
	} else if period != l.projectPer {
		def = nil
	}
	for i := range ws {
		if ws[i].Limit == nil && def != nil {
			m := *def
			ws[i].Limit = &m
		}
	}
	return ws, nil
}

// UsageReport is usage billed in arrears: a provider charged after the fact
// and reports what was used.
type UsageReport struct {
	// Key makes the report idempotent: a report is applied once per key.
	Key     string
	Scope   Scope
	Service string
	Amount  Money
	// At is when the usage happened and picks its windows; zero means now.
	// It must not be in the future.
	At time.Time
}

// UsageResult is the outcome of a usage report.
type UsageResult struct {
	Entry UsageEntry
	// Replayed is true when the key had already been applied.
	Replayed bool
	// Counters are the counters of the report's scope and windows after it.
	Counters []CounterUsage
	// Overrun lists the counters whose spend now exceeds their cap; each
	// blocks new reservations until its window rolls over or the cap is
	// raised.
	Overrun []CounterUsage
}

// ReportUsage applies a usage report billed in arrears. It is applied once
// per key and counts against every cap of the scope without being refused:
// the money is already spent. An overrun it causes is reported in the result,
// logged, alerted once, and blocks further reservations in the window.
func (l *Ledger) ReportUsage(ctx context.Context, r UsageReport) (UsageResult, error) {
	if err := checkScope(r.Scope); err != nil {
		return UsageResult{}, err
	}
	if err := checkKey(r.Key); err != nil {
		return UsageResult{}, err
	}
	if r.Service != "" && !validServiceID(r.Service) {
		return UsageResult{}, errorf(ErrInvalidRequest, "service %q: not a service id", r.Service)
	}
	if err := l.checkMoney("usage amount", r.Amount, false); err != nil {
		return UsageResult{}, err
	}
	now := l.now()
	at := r.At
	if at.IsZero() {
		at = now
	}
	if at.After(now) {
		return UsageResult{}, errorf(ErrInvalidRequest, "usage time %s is in the future", at.Format(time.RFC3339))
	}
	checks := l.checksAt(r.Scope, at)
	counters := make([]Counter, len(checks))
	for i, c := range checks {
		counters[i] = c.Counter
	}
	e, replayed, err := l.store.ApplyUsage(ctx, &UsageRequest{
		Key: r.Key, Scope: r.Scope, Service: r.Service, Amount: r.Amount, At: at,
		Counters: counters, Now: now,
		RequestHash: requestHash('U', r.Scope, r.Service, r.Amount, r.At),
	})
	if err != nil {
		return UsageResult{}, storeErr(err)
	}
	res := UsageResult{Entry: e, Replayed: replayed}
	cs, err := l.store.Usage(ctx, checks, now)
	if err != nil {
		// The report is stored; only the report of its effect failed.
		l.log.LogAttrs(ctx, slog.LevelWarn, "budget: usage applied, reading counters failed", slog.String("key", r.Key), slog.Any("error", err))
		return res, nil
	}
	res.Counters = cs
	for _, c := range cs {
		if c.Limit != nil && c.Spent() > c.Limit.Amount {
			res.Overrun = append(res.Overrun, c)
		}
	}
	if len(res.Overrun) > 0 && !replayed {
		l.log.LogAttrs(ctx, slog.LevelWarn, "budget: usage in arrears overran a cap", slog.String("scope", r.Scope.String()), slog.String("key", r.Key), slog.Int64("amount", r.Amount.Amount))
	}
	l.deliver(ctx, cs, now)
	return res, nil
}

// checkAlerts evaluates the alerts of the counters a hold reserved at t
// counts in.
func (l *Ledger) checkAlerts(ctx context.Context, scope Scope, t time.Time) {
	now := l.now()
	cs, err := l.store.Usage(ctx, l.checksAt(scope, t), now)
	if err != nil {
		l.log.LogAttrs(ctx, slog.LevelWarn, "budget: reading counters for alerts failed", slog.String("scope", scope.String()), slog.Any("error", err))
		return
	}
	l.deliver(ctx, cs, now)
}

// deliver sends each crossed threshold and overrun not yet marked. Marking
// comes first, so an alert is delivered at most once even across Ledgers.
func (l *Ledger) deliver(ctx context.Context, cs []CounterUsage, now time.Time) {
	if l.alerts == nil {
		return
	}
	for _, c := range cs {
		if c.Limit == nil {
			continue
		}
		spent := c.Spent()
		base := "alert:" + c.Counter.Project + "/" + c.Counter.Provider + "/" + string(c.Counter.Window) + "/"
		for _, p := range l.thresholds {
			// spent ≥ p% of limit, in integers; a zero cap is crossed by any spend.
			if spent*100 < int64(p)*c.Limit.Amount || spent == 0 {
				continue
			}
			l.fire(ctx, base+itoa(p), Alert{Kind: AlertThreshold, Counter: c.Counter, Threshold: p, Limit: *c.Limit, Spent: spent, At: now})
		}
		if spent > c.Limit.Amount {
			l.fire(ctx, base+"overrun", Alert{Kind: AlertOverrun, Counter: c.Counter, Threshold: 100, Limit: *c.Limit, Spent: spent, At: now})
		}
	}
}

func (l *Ledger) fire(ctx context.Context, key string, a Alert) {
	first, err := l.store.MarkAlert(ctx, key, a.At)
	if err != nil {
		l.log.LogAttrs(ctx, slog.LevelWarn, "budget: marking alert failed; not delivered", slog.String("alert", key), slog.Any("error", err))
		return
	}
	if first {
		l.alerts(ctx, a)
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/agentprov/agentprov/budget"
)

// queries holds the statement text shared by both dialects, already
// rebound, plus per-arity caches of the generated ones.
type queries struct {
	holdByID, holdByKey, usageByKey, capHistory, markAlert, windows string

	mu    sync.Mutex
	byKey map[string]string // generated statements by name and arity
}

func buildQueries(d Dialect, t tables) queries {
	return queries{
		holdByID:   d.Rebind(`SELECT ` + holdCols + ` FROM ` + t.holds + ` WHERE id = $1`),
		holdByKey:  d.Rebind(`SELECT ` + holdCols + ` FROM ` + t.holds + ` WHERE idem_key = $1`),
		usageByKey: d.Rebind(`SELECT ` + usageCols + ` FROM ` + t.usage + ` WHERE idem_key = $1`),
		capHistory: d.Rebind(`SELECT provider, period, limit_amount, currency, previous_amount, previous_currency, by_kind, by_id, reason, at
FROM ` + t.capHistory + ` WHERE project = $1 ORDER BY id`),
		markAlert: d.Rebind(`INSERT INTO ` + t.alerts + ` (alert_key, at) VALUES ($1, $2)
ON CONFLICT (alert_key) DO NOTHING RETURNING alert_key`),
		// Windows of one period sort after "<period>:" and before
		// "<period>;" (';' follows ':'), which keeps the scan on the key.
		windows: d.Rebind(`SELECT k.win, k.committed, k.held, k.arrears, cp.limit_amount, cp.currency
FROM ` + t.counters + ` k LEFT JOIN ` + t.caps + ` cp ON cp.project = k.project AND cp.provider = k.provider AND cp.period = $3
WHERE k.project = $1 AND k.provider = $2 AND k.win > $4 AND k.win < $5
ORDER BY k.win`),
		byKey: map[string]string{},
	}
}

// generated returns the statement named name for arity n, building it once.
func (q *queries) generated(name string, n int, build func(int) string) string {
	k := name + "/" + strconv.Itoa(n)
	q.mu.Lock()
	defer q.mu.Unlock()
	if s, ok := q.byKey[k]; ok {
		return s
	}
	s := build(n)
	q.byKey[k] = s
	return s
}

// usageQuery reads n counters with their stored caps, in the given order.
// Arguments: per counter (ord, project, provider, win, period).
func (s *Store) usageQuery(n int) string {
	return s.q.generated("usage", n, func(n int) string {
		var b strings.Builder
		b.WriteString(`WITH c (ord, project, provider, win, period) AS (`)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(` UNION ALL `)
			}
			p := 5*i + 1
			fmt.Fprintf(&b, `SELECT CAST($%d AS INTEGER), CAST($%d AS TEXT), CAST($%d AS TEXT), CAST($%d AS TEXT), CAST($%d AS TEXT)`, p, p+1, p+2, p+3, p+4)
		}
		b.WriteString(`)
SELECT c.ord, COALESCE(k.committed, 0), COALESCE(k.held, 0), COALESCE(k.arrears, 0), cp.limit_amount, cp.currency
FROM c
LEFT JOIN ` + s.t.counters + ` k ON k.project = c.project AND k.provider = c.provider AND k.win = c.win
LEFT JOIN ` + s.t.caps + ` cp ON cp.project = c.project AND cp.provider = c.provider AND cp.period = c.period
ORDER BY c.ord`)
		return s.dialect.Rebind(b.String())
	})
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// readUsage reads checks' counters (without reclaiming expired holds).
func (s *Store) readUsage(ctx context.Context, q querier, checks []budget.CapCheck) ([]budget.CounterUsage, error) {
	out := make([]budget.CounterUsage, len(checks))
	if len(checks) == 0 {
		return out, nil
	}
	args := make([]any, 0, 5*len(checks))
	for i, c := range checks {
		args = append(args, i, c.Counter.Project, c.Counter.Provider, string(c.Counter.Window), string(c.Counter.Window.Period()))
	}
	rows, err := q.QueryContext(ctx, s.usageQuery(len(checks)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var (
			i                        int
			committed, held, arrears int64
			limit                    sql.NullInt64
			currency                 sql.NullString
		)
		if err := rows.Scan(&i, &committed, &held, &arrears, &limit, &currency); err != nil {
			return nil, err
		}
		if i < 0 || i >= len(checks) {
			return nil, fmt.Errorf("usage row %d out of range", i)
		}
		c := checks[i]
		u := budget.CounterUsage{Counter: c.Counter, Committed: committed, Held: held, Arrears: arrears}
		if m := nullMoney(limit, currency); m != nil {
			u.Limit = m
		} else if c.Default != nil {
			m := *c.Default
			u.Limit = &m
		}
		out[i] = u
		seen++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if seen != len(checks) {
		return nil, fmt.Errorf("usage returned %d rows for %d counters", seen, len(checks))
	}
	return out, nil
}

// firstOver returns the CapError of the first check (in the caller's order)
// that amount would take over its limit, or nil.
func firstOver(us []budget.CounterUsage, amount int64) *budget.CapError {
	for _, u := range us {
		if u.Limit == nil {
			continue
		}
		if u.Used() > u.Limit.Amount-amount {
			return &budget.CapError{Counter: u.Counter, Limit: *u.Limit, Used: u.Used(), Requested: amount}
		}
	}
	return nil
}

// reserveReq is a validated ReserveRequest.
type reserveReq struct {
	*budget.ReserveRequest
	now, expires int64
	// sorted lists the checks in lock order (provider, then window).
	sorted []budget.CapCheck
}

func prepareReserve(req *budget.ReserveRequest) (*reserveReq, error) {
	if req == nil {
		return nil, fail(budget.ErrInvalidRequest, "reserve request: must not be nil")
	}
	if req.HoldID == "" || req.Key == "" {
		return nil, fail(budget.ErrInvalidRequest, "reserve request: hold id and key must not be empty")
	}
	if req.Amount.Amount < 0 {
		return nil, fail(budget.ErrInvalidAmount, "amount %d: must not be negative", req.Amount.Amount)
	}
	if err := storableText(req.HoldID, req.Key, req.RequestHash, req.Scope.Project, req.Scope.Provider, req.Service, req.Memo, req.Amount.Currency); err != nil {
		return nil, err
	}
	r := &reserveReq{ReserveRequest: req}
	var err error
	if r.now, err = nanos("now", req.Now); err != nil {
		return nil, err
	}
	if r.expires, err = nanos("expiry", req.ExpiresAt); err != nil {
		return nil, err
	}
	r.sorted = slices.Clone(req.Checks)
	if err := checkCounters(req.Scope, r.sorted, func(c budget.CapCheck) budget.Counter { return c.Counter }); err != nil {
		return nil, err
	}
	return r, nil
}

// checkCounters sorts list into lock order and refuses counters outside the
// scope and duplicates (a statement may change a row only once).
func checkCounters[T any](scope budget.Scope, list []T, counter func(T) budget.Counter) error {
	for _, x := range list {
		c := counter(x)
		if c.Project != scope.Project || (c.Provider != "" && c.Provider != scope.Provider) {
			return fail(budget.ErrInvalidRequest, "counter %s/%s %s is outside scope %v", c.Project, c.Provider, c.Window, scope)
		}
	}
	slices.SortFunc(list, func(a, b T) int {
		ca, cb := counter(a), counter(b)
		return cmp.Or(strings.Compare(ca.Provider, cb.Provider), strings.Compare(string(ca.Window), string(cb.Window)))
	})
	for i := 1; i < len(list); i++ {
		if a, b := counter(list[i-1]), counter(list[i]); a.Provider == b.Provider && a.Window == b.Window {
			return fail(budget.ErrInvalidRequest, "counter %s/%s %s is listed twice", a.Project, a.Provider, a.Window)
		}
	}
	return nil
}

// storableText refuses text every dialect cannot store exactly: PostgreSQL
// TEXT holds neither NUL nor invalid UTF-8, and a store must not turn bad
// input into a database failure.
func storableText(ss ...string) error {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return fail(budget.ErrInvalidRequest, "text %q: must be UTF-8 without NUL", s)
		}
	}
	return nil
}

// replay answers a reservation whose key is already stored.
func replay(stored storedHold, req *budget.ReserveRequest) (budget.Hold, bool, error) {
	if stored.hash != req.RequestHash || stored.Scope != req.Scope {
		return budget.Hold{}, false, fail(budget.ErrIdempotencyConflict, "idempotency key %q was used for a different request", req.Key)
	}
	return stored.Hold, true, nil
}

func (s *Store) holdByKey(ctx context.Context, q querier, key string) (storedHold, bool, error) {
	h, err := scanHold(q.QueryRowContext(ctx, s.q.holdByKey, key))
	if errors.Is(err, sql.ErrNoRows) {
		return storedHold{}, false, nil
	}
	return h, err == nil, err
}

func (s *Store) holdByID(ctx context.Context, q querier, id string) (storedHold, bool, error) {
	h, err := scanHold(q.QueryRowContext(ctx, s.q.holdByID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return storedHold{}, false, nil
	}
	return h, err == nil, err
}

// Reserve implements budget.Store.
func (s *Store) Reserve(ctx context.Context, req *budget.ReserveRequest) (budget.Hold, bool, error) {
	r, err := prepareReserve(req)
	if err != nil {
		return budget.Hold{}, false, err
	}
	if s.dialect == SQLite {
		return s.reserveSQLite(ctx, r)
	}
	return s.reservePostgres(ctx, r)
}

// transitionReq is a validated TransitionRequest.
type transitionReq struct {
	*budget.TransitionRequest
	now int64
}

func prepareTransition(req *budget.TransitionRequest) (*transitionReq, error) {
	if req == nil {
		return nil, fail(budget.ErrInvalidRequest, "transition request: must not be nil")
	}
	switch {
	case req.From == budget.HoldActive && req.To == budget.HoldCommitted:
		if req.Actual.Amount < 0 {
			return nil, fail(budget.ErrInvalidAmount, "commit of %d: must not be negative", req.Actual.Amount)
		}
	case req.From == budget.HoldActive && req.To == budget.HoldReleased:
	case req.From == budget.HoldCommitted && req.To == budget.HoldReversed:
	default:
		return nil, fail(budget.ErrInvalidRequest, "no transition %s → %s", req.From, req.To)
	}
	if req.HoldID == "" {
		return nil, fail(budget.ErrHoldNotFound, "hold id: must not be empty")
	}
	if err := storableText(req.HoldID, req.Reason); err != nil {
		return nil, err
	}
	now, err := nanos("now", req.Now)
	if err != nil {
		return nil, err
	}
	return &transitionReq{TransitionRequest: req, now: now}, nil
}

// verdict is what a transition that did not apply should do next.
type verdict int

const (
	vDone   verdict = iota // answer with the hold and err
	vExpire                // mark the hold expired, then answer ErrHoldExpired
	vRetry                 // the hold changed under us: try the transition again
)

// judge decides, from the stored hold, the outcome of a transition whose
// compare-and-set did not apply (or, for SQLite, before applying it).
func judge(h storedHold, found bool, r *transitionReq) (verdict, error) {
	if !found {
		return vDone, fail(budget.ErrHoldNotFound, "no hold %q", r.HoldID)
	}
	if h.State == budget.HoldActive && h.ExpiresAt.UnixNano() <= r.now {
		return vExpire, nil
	}
	switch {
	case h.State == r.To:
		if r.To == budget.HoldCommitted && h.Committed.Amount != r.Actual.Amount {
			return vDone, fail(budget.ErrIdempotencyConflict, "hold %q was committed with %d, not %d", r.HoldID, h.Committed.Amount, r.Actual.Amount)
		}
		return vDone, nil
	case h.State == budget.HoldExpired:
		return vDone, fail(budget.ErrHoldExpired, "hold %q expired at %s", r.HoldID, h.ExpiresAt.Format(time.RFC3339Nano))
	case h.State != r.From:
		return vDone, fail(budget.ErrHoldEnded, "hold %q is %s", r.HoldID, h.State)
	case r.To == budget.HoldCommitted && r.Actual.Amount > h.Amount.Amount:
		return vDone, fail(budget.ErrInvalidAmount, "commit of %d exceeds the %d held", r.Actual.Amount, h.Amount.Amount)
	}
	return vRetry, nil
}

func expiredErr(h storedHold) error {
	return fail(budget.ErrHoldExpired, "hold %q expired at %s", h.ID, h.ExpiresAt.Format(time.RFC3339Nano))
}

// Transition implements budget.Store.
func (s *Store) Transition(ctx context.Context, req *budget.TransitionRequest) (budget.Hold, error) {
	r, err := prepareTransition(req)
	if err != nil {
		return budget.Hold{}, err
	}
	if s.dialect == SQLite {
		return s.transitionSQLite(ctx, r)
	}
	return s.transitionPostgres(ctx, r)
}

// Hold implements budget.Store.
func (s *Store) Hold(ctx context.Context, id string) (budget.Hold, error) {
	h, found, err := s.holdByID(ctx, s.db, id)
	if err != nil {
		return budget.Hold{}, dbErr("hold", err)
	}
	if !found {
		return budget.Hold{}, fail(budget.ErrHoldNotFound, "no hold %q", id)
	}
	return h.Hold, nil
}

// usageCols is the column list of usage entries, in scanUsage order.
const usageCols = `idem_key, request_hash, project, provider, service, currency, amount, at, recorded_at`

type storedUsage struct {
	budget.UsageEntry
	hash string
}

func scanUsage(r scanner, extra ...any) (storedUsage, error) {
	var (
		u                                 storedUsage
		key, hash, project, provider, svc string
		currency                          string
		amount, at, recorded              int64
	)
	dest := append(extra, &key, &hash, &project, &provider, &svc, &currency, &amount, &at, &recorded)
	if err := r.Scan(dest...); err != nil {
		return storedUsage{}, err
	}
	u.hash = hash
	u.UsageEntry = budget.UsageEntry{Key: key, Scope: budget.Scope{Project: project, Provider: provider}, Service: svc,
		Amount: budget.Money{Amount: amount, Currency: currency}, At: fromNanos(at), RecordedAt: fromNanos(recorded)}
	return u, nil
}

func replayUsage(stored storedUsage, req *budget.UsageRequest) (budget.UsageEntry, bool, error) {
	if stored.hash != req.RequestHash || stored.Scope != req.Scope {
		return budget.UsageEntry{}, false, fail(budget.ErrIdempotencyConflict, "usage key %q was used for a different report", req.Key)
	}
	return stored.UsageEntry, true, nil
}

// usageReq is a validated UsageRequest.
type usageReq struct {
	*budget.UsageRequest
	at, now int64
	sorted  []budget.Counter
}

func prepareUsage(req *budget.UsageRequest) (*usageReq, error) {
	if req == nil || req.Key == "" {
		return nil, fail(budget.ErrInvalidRequest, "usage request: key must not be empty")
	}
	if req.Amount.Amount < 0 {
		return nil, fail(budget.ErrInvalidAmount, "usage of %d: must not be negative", req.Amount.Amount)
	}
	if err := storableText(req.Key, req.RequestHash, req.Scope.Project, req.Scope.Provider, req.Service, req.Amount.Currency); err != nil {
		return nil, err
	}
	r := &usageReq{UsageRequest: req, sorted: slices.Clone(req.Counters)}
	var err error
	if r.at, err = nanos("usage time", req.At); err != nil {
		return nil, err
	}
	if r.now, err = nanos("now", req.Now); err != nil {
		return nil, err
	}
	if err := checkCounters(req.Scope, r.sorted, func(c budget.Counter) budget.Counter { return c }); err != nil {
		return nil, err
	}
	return r, nil
}

// ApplyUsage implements budget.Store.
func (s *Store) ApplyUsage(ctx context.Context, req *budget.UsageRequest) (budget.UsageEntry, bool, error) {
	r, err := prepareUsage(req)
	if err != nil {
		return budget.UsageEntry{}, false, err
	}
	if s.dialect == SQLite {
		return s.applyUsageSQLite(ctx, r)
	}
	return s.applyUsagePostgres(ctx, r)
}

// SetCap implements budget.Store.
func (s *Store) SetCap(ctx context.Context, rec budget.CapRecord) (budget.CapRecord, error) {
	if rec.Limit.Amount < 0 {
		return budget.CapRecord{}, fail(budget.ErrInvalidAmount, "cap of %d: must not be negative", rec.Limit.Amount)
	}
	if err := storableText(rec.Key.Project, rec.Key.Provider, string(rec.Key.Period), rec.Limit.Currency, string(rec.By.Kind), rec.By.ID, rec.Reason); err != nil {
		return budget.CapRecord{}, err
	}
	at, err := nanos("cap time", rec.At)
	if err != nil {
		return budget.CapRecord{}, err
	}
	var prev *budget.Money
	if s.dialect == SQLite {
		prev, err = s.setCapSQLite(ctx, rec, at)
	} else {
		prev, err = s.setCapPostgres(ctx, rec, at)
	}
	if err != nil {
		return budget.CapRecord{}, dbErr("set cap", err)
	}
	rec.Previous = prev
	rec.At = fromNanos(at)
	return rec, nil
}

// CapHistory implements budget.Store.
func (s *Store) CapHistory(ctx context.Context, project string) ([]budget.CapRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.q.capHistory, project)
	if err != nil {
		return nil, dbErr("cap history", err)
	}
	defer rows.Close()
	var out []budget.CapRecord
	for rows.Next() {
		var (
			rec              budget.CapRecord
			provider, period string
			limit, at        int64
			currency         string
			prevAmount       sql.NullInt64
			prevCurrency     sql.NullString
			kind, id, reason string
		)
		if err := rows.Scan(&provider, &period, &limit, &currency, &prevAmount, &prevCurrency, &kind, &id, &reason, &at); err != nil {
			return nil, dbErr("cap history", err)
		}
		rec.Key = budget.CapKey{Project: project, Provider: provider, Period: budget.Period(period)}
		rec.Limit = budget.Money{Amount: limit, Currency: currency}
		rec.Previous = nullMoney(prevAmount, prevCurrency)
		rec.By = budget.Principal{Kind: budget.PrincipalKind(kind), ID: id}
		rec.Reason = reason
		rec.At = fromNanos(at)
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("cap history", err)
	}
	return out, nil
}

// Usage implements budget.Store. Expired holds of the checks' projects are
// reclaimed first, so Held counts only holds live at now.
func (s *Store) Usage(ctx context.Context, checks []budget.CapCheck, now time.Time) ([]budget.CounterUsage, error) {
	n, err := nanos("now", now)
	if err != nil {
		return nil, err
	}
	var out []budget.CounterUsage
	err = s.withReclaim(ctx, projectsOf(checks), n, func(q querier) error {
		var err error
		out, err = s.readUsage(ctx, q, checks)
		return err
	})
	if err != nil {
		return nil, dbErr("usage", err)
	}
	return out, nil
}

func projectsOf(checks []budget.CapCheck) []string {
	var ps []string
	for _, c := range checks {
		if !slices.Contains(ps, c.Counter.Project) {
			ps = append(ps, c.Counter.Project)
		}
	}
	return ps
}

// Windows implements budget.Store.
func (s *Store) Windows(ctx context.Context, project, provider string, period budget.Period, now time.Time) ([]budget.CounterUsage, error) {
	n, err := nanos("now", now)
	if err != nil {
		return nil, err
	}
	var out []budget.CounterUsage
	err = s.withReclaim(ctx, []string{project}, n, func(q querier) error {
		rows, err := q.QueryContext(ctx, s.q.windows, project, provider, string(period), string(period)+":", string(period)+";")
		if err != nil {
			return err
		}
		defer rows.Close()
		out = out[:0]
		for rows.Next() {
			var (
				win                      string
				committed, held, arrears int64
				limit                    sql.NullInt64
				currency                 sql.NullString
			)
			if err := rows.Scan(&win, &committed, &held, &arrears, &limit, &currency); err != nil {
				return err
			}
			out = append(out, budget.CounterUsage{
				Counter:   budget.Counter{Project: project, Provider: provider, Window: budget.Window(win)},
				Limit:     nullMoney(limit, currency),
				Committed: committed, Held: held, Arrears: arrears,
			})
		}
		return rows.Err()
	})
	if err != nil {
		return nil, dbErr("windows", err)
	}
	return out, nil
}

// withReclaim reclaims the expired holds of projects at now, then runs read.
func (s *Store) withReclaim(ctx context.Context, projects []string, now int64, read func(querier) error) error {
	if s.dialect == SQLite {
		return s.inTx(ctx, func(tx querier) error {
			for _, p := range projects {
				if err := s.reclaimSQLite(ctx, tx, p, now); err != nil {
					return err
				}
			}
			return read(tx)
		})
	}
	for _, p := range projects {
		if _, err := s.reclaimPostgres(ctx, p, now); err != nil {
			return err
		}
	}
	return read(s.db)
}

// MarkAlert implements budget.Store.
func (s *Store) MarkAlert(ctx context.Context, key string, at time.Time) (bool, error) {
	n, err := nanos("alert time", at)
	if err != nil {
		return false, err
	}
	var got string
	err = s.db.QueryRowContext(ctx, s.q.markAlert, key, n).Scan(&got)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, dbErr("mark alert", err)
	}
	return true, nil
}

// inTx runs f in a transaction (BEGIN IMMEDIATE on SQLite through the DSN)
// and commits it if f succeeds.
func (s *Store) inTx(ctx context.Context, f func(querier) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// maxAttempts bounds the retries of a statement whose outcome changed
// between its attempt and the diagnosis (another instance moved first).
const maxAttempts = 8

var errContention = errors.New("budget/sqlstore: the outcome kept changing under concurrent updates; nothing was changed")

package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/agentprov/agentprov/budget"
)

// PostgreSQL: every contract step is one statement, run in its own
// (autocommit) transaction at READ COMMITTED. Counter rows are changed only
// through INSERT … SELECT … ORDER BY provider, win ON CONFLICT DO UPDATE,
// which locks them in that order in every statement, so statements that
// share counters queue instead of deadlocking; a waiting statement
// re-evaluates its DO UPDATE … WHERE against the row as committed by the one
// it waited for, so no reservation is ever decided on a stale sum and no
// serialization retries happen. Statements that change holds lock the hold
// rows before the counter rows.

// reserveStatement builds the reservation for n checks. Arguments: $1 hold
// id, $2 key, $3 request hash, $4 project, $5 provider, $6 service, $7 memo,
// $8 currency, $9 amount, $10 created, $11 expires, $12 n, $13 the counter
// list, then per check (sorted) provider, window, period, default limit.
// It writes the n counter rows and the hold row, nothing else.
func (s *Store) reserveStatement(n int) string {
	return s.q.generated("pg-reserve", n, func(n int) string {
		t := s.t
		var b strings.Builder
		b.WriteString(`WITH dup AS (
	SELECT ` + holdCols + ` FROM ` + t.holds + ` WHERE idem_key = $2
), chk (provider, win, period, dflt) AS (
	`)
		writeRows(&b, n, 14, "TEXT", "TEXT", "TEXT", "BIGINT")
		b.WriteString(`
), lim AS (
	SELECT chk.provider, chk.win, COALESCE(cp.limit_amount, chk.dflt) AS lim
	FROM chk LEFT JOIN ` + t.caps + ` cp ON cp.project = $4 AND cp.provider = chk.provider AND cp.period = chk.period
), up AS (
	INSERT INTO ` + t.counters + ` AS k (project, provider, win, committed, held, arrears)
	SELECT CAST($4 AS TEXT), lim.provider, lim.win, 0, CAST($9 AS BIGINT), 0 FROM lim
	WHERE NOT EXISTS (SELECT 1 FROM dup) AND (lim.lim IS NULL OR CAST($9 AS BIGINT) <= lim.lim)
	ORDER BY lim.provider, lim.win
	ON CONFLICT (project, provider, win) DO UPDATE SET held = k.held + excluded.held
	WHERE NOT EXISTS (SELECT 1 FROM lim WHERE lim.provider = k.provider AND lim.win = k.win
		AND k.committed + k.held + k.arrears > lim.lim - excluded.held)
	RETURNING 1
), ins AS (
	INSERT INTO ` + t.holds + ` (` + holdCols + `, counter_list)
	SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS TEXT), CAST($5 AS TEXT), CAST($6 AS TEXT), CAST($7 AS TEXT), CAST($8 AS TEXT),
		CAST($9 AS BIGINT), 0,
		CASE WHEN (SELECT count(*) FROM up) = CAST($12 AS BIGINT) THEN 'active' ELSE 'refused' END,
		CAST($10 AS BIGINT), CAST($11 AS BIGINT), NULL, '', CAST($13 AS TEXT)
	WHERE NOT EXISTS (SELECT 1 FROM dup)
	RETURNING ` + holdCols + `
)
SELECT false, ` + holdCols + ` FROM ins
UNION ALL
SELECT true, ` + holdCols + ` FROM dup`)
		return b.String()
	})
}

// writeRows writes n rows of typed placeholders starting at $first, as a
// query usable as a CTE body (an empty query when n is 0).
func writeRows(b *strings.Builder, n, first int, types ...string) {
	if n == 0 {
		b.WriteString(`SELECT `)
		for j, ty := range types {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "CAST(NULL AS %s)", ty)
		}
		b.WriteString(` WHERE 1 = 0`)
		return
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString("\n\tUNION ALL ")
		}
		b.WriteString(`SELECT `)
		for j, ty := range types {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "CAST($%d AS %s)", first+len(types)*i+j, ty)
		}
	}
}

func (s *Store) reservePostgres(ctx context.Context, r *reserveReq) (budget.Hold, bool, error) {
	args := make([]any, 0, 13+4*len(r.sorted))
	var list strings.Builder
	for i, c := range r.sorted {
		if i > 0 {
			list.WriteByte(',')
		}
		list.WriteString(c.Counter.Provider + "|" + string(c.Counter.Window))
	}
	args = append(args, r.HoldID, r.Key, r.RequestHash, r.Scope.Project, r.Scope.Provider, r.Service, r.Memo,
		r.Amount.Currency, r.Amount.Amount, r.now, r.expires, len(r.sorted), list.String())
	for _, c := range r.sorted {
		var dflt any
		if c.Default != nil {
			dflt = c.Default.Amount
		}
		args = append(args, c.Counter.Provider, string(c.Counter.Window), string(c.Counter.Window.Period()), dflt)
	}
	q := s.reserveStatement(len(r.sorted))
	reclaimed := false
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var replayed bool
		h, err := scanHold(s.db.QueryRowContext(ctx, q, args...), &replayed)
		switch state := sqlState(err); {
		case err == nil:
			if replayed {
				return replay(h, r.ReserveRequest)
			}
			return h.Hold, false, nil
		case state == sqlStateUniqueViolation || state == sqlStateCheckViolation:
			// Either the key was stored by a concurrent call (answer it as a
			// replay), or some cap refused: the statement undid everything.
			stored, found, err := s.holdByKey(ctx, s.db, r.Key)
			if err != nil {
				return budget.Hold{}, false, dbErr("reserve", err)
			}
			if found {
				return replay(stored, r.ReserveRequest)
			}
			if state == sqlStateUniqueViolation {
				return budget.Hold{}, false, fail(budget.ErrInvalidRequest, "hold id %q already exists", r.HoldID)
			}
			if !reclaimed {
				// Expired holds still in the sums may be what refused it:
				// if any were reclaimed, try again.
				reclaimed = true
				n, err := s.reclaimPostgres(ctx, r.Scope.Project, r.now)
				if err != nil {
					return budget.Hold{}, false, dbErr("reserve", err)
				}
				if n > 0 {
					continue
				}
			}
			us, err := s.readUsage(ctx, s.db, r.Checks)
			if err != nil {
				return budget.Hold{}, false, dbErr("reserve", err)
			}
			if ce := firstOver(us, r.Amount.Amount); ce != nil {
				return budget.Hold{}, false, ce
			}
			// Room appeared since the attempt: try again.
		case errors.Is(err, sql.ErrNoRows):
			return budget.Hold{}, false, dbErr("reserve", errors.New("the statement returned no row"))
		default:
			return budget.Hold{}, false, dbErr("reserve", err)
		}
	}
	s.log.WarnContext(ctx, "budget/sqlstore: reservation gave up under contention", "scope", r.Scope.String(), "key", r.Key)
	return budget.Hold{}, false, dbErr("reserve", errContention)
}

// transitionStatement builds the compare-and-set of one kind of move: the
// hold row changes only from its expected state, and the counters it counts
// in change by the deltas in the same statement. It returns the number of
// counters changed, then the hold as changed; no row when the CAS missed.
func (s *Store) transitionStatement(kind string) string {
	return s.q.generated("pg-"+kind, 0, func(int) string {
		var set, where, dCommitted, dHeld string
		switch kind {
		case "commit": // $1 id, $2 now, $3 actual
			set = `state = 'committed', committed = CAST($3 AS BIGINT), ended_at = CAST($2 AS BIGINT)`
			where = `state = 'active' AND expires_at > $2 AND amount >= $3`
			dCommitted, dHeld = `h.committed`, `-h.amount`
		case "release": // $1 id, $2 now
			set = `state = 'released', ended_at = CAST($2 AS BIGINT)`
			where = `state = 'active' AND expires_at > $2`
			dCommitted, dHeld = `0`, `-h.amount`
		case "reverse": // $1 id, $2 reason
			set = `state = 'reversed', reason = CAST($2 AS TEXT)`
			where = `state = 'committed'`
			dCommitted, dHeld = `-h.committed`, `0`
		case "expire": // $1 id, $2 now
			set = `state = 'expired', ended_at = expires_at`
			where = `state = 'active' AND expires_at <= $2`
			dCommitted, dHeld = `0`, `-h.amount`
		default:
			panic("budget/sqlstore: unknown transition " + kind)
		}
		t := s.t
		return `WITH h AS (
	UPDATE ` + t.holds + ` SET ` + set + `
	WHERE id = $1 AND ` + where + `
	RETURNING ` + holdCols + `, counter_list
), up AS (
	INSERT INTO ` + t.counters + ` AS k (project, provider, win, committed, held, arrears)
	SELECT h.project, hc.provider, hc.win, ` + dCommitted + `, ` + dHeld + `, 0
	FROM h CROSS JOIN LATERAL (` + s.countersOf("h") + `) hc
	ORDER BY hc.provider, hc.win
	ON CONFLICT (project, provider, win) DO UPDATE
	SET committed = k.committed + excluded.committed, held = k.held + excluded.held
	RETURNING 1
)
SELECT (SELECT count(*) FROM up), ` + holdCols + ` FROM h`
	})
}

// countersOf is the (provider, win) rows of the counters hold row h counts
// in: its counter_list, or for a hold written before that column existed,
// its hold_counters rows.
func (s *Store) countersOf(h string) string {
	return `SELECT split_part(x, '|', 1) AS provider, split_part(x, '|', 2) AS win
		FROM unnest(string_to_array(` + h + `.counter_list, ',')) AS x
		UNION ALL
		SELECT l.provider, l.win FROM ` + s.t.holdCounters + ` l WHERE l.hold_id = ` + h + `.id AND ` + h + `.counter_list IS NULL`
}

// cas runs one transition statement; found is false when the CAS missed.
func (s *Store) cas(ctx context.Context, kind string, args ...any) (storedHold, bool, error) {
	var n int64
	h, err := scanHold(s.db.QueryRowContext(ctx, s.transitionStatement(kind), args...), &n)
	if errors.Is(err, sql.ErrNoRows) {
		return storedHold{}, false, nil
	}
	if err != nil {
		return storedHold{}, false, err
	}
	return h, true, nil
}

func (s *Store) transitionPostgres(ctx context.Context, r *transitionReq) (budget.Hold, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var (
			h     storedHold
			moved bool
			err   error
		)
		switch r.To {
		case budget.HoldCommitted:
			h, moved, err = s.cas(ctx, "commit", r.HoldID, r.now, r.Actual.Amount)
		case budget.HoldReleased:
			h, moved, err = s.cas(ctx, "release", r.HoldID, r.now)
		case budget.HoldReversed:
			h, moved, err = s.cas(ctx, "reverse", r.HoldID, r.Reason)
		}
		if err != nil {
			return budget.Hold{}, dbErr("transition", err)
		}
		if moved {
			return h.Hold, nil
		}
		// The CAS missed: find out why from the hold as stored now.
		h, found, err := s.holdByID(ctx, s.db, r.HoldID)
		if err != nil {
			return budget.Hold{}, dbErr("transition", err)
		}
		v, verr := judge(h, found, r)
		switch v {
		case vDone:
			return h.Hold, verr
		case vExpire:
			e, moved, err := s.cas(ctx, "expire", r.HoldID, r.now)
			if err != nil {
				return budget.Hold{}, dbErr("transition", err)
			}
			if moved {
				return e.Hold, expiredErr(e)
			}
			// Someone else ended it first: judge again.
		}
	}
	return budget.Hold{}, dbErr("transition", errContention)
}

// reclaimStatement ends every active hold of project $1 expired at $2 and
// takes them out of their counters. SKIP LOCKED leaves holds another
// statement is changing to that statement (which ends them either way), so
// concurrent reclaims never wait on each other nor deadlock.
func (s *Store) reclaimStatement() string {
	return s.q.generated("pg-reclaim", 0, func(int) string {
		t := s.t
		return `WITH e AS (
	UPDATE ` + t.holds + ` SET state = 'expired', ended_at = expires_at
	WHERE id IN (
		SELECT id FROM ` + t.holds + `
		WHERE project = $1 AND state = 'active' AND expires_at <= $2
		FOR UPDATE SKIP LOCKED
	) AND state = 'active'
	RETURNING id, project, amount, counter_list
), up AS (
	INSERT INTO ` + t.counters + ` AS k (project, provider, win, committed, held, arrears)
	SELECT e.project, hc.provider, hc.win, 0, CAST(-SUM(e.amount) AS BIGINT), 0
	FROM e CROSS JOIN LATERAL (` + s.countersOf("e") + `) hc
	GROUP BY e.project, hc.provider, hc.win
	ORDER BY hc.provider, hc.win
	ON CONFLICT (project, provider, win) DO UPDATE SET held = k.held + excluded.held
	RETURNING 1
)
SELECT count(*) FROM e`
	})
}

// reclaimPostgres reports how many holds it ended.
func (s *Store) reclaimPostgres(ctx context.Context, project string, now int64) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, s.reclaimStatement(), project, now).Scan(&n)
	return n, err
}

// usageStatement applies a usage report to n counters. Arguments: $1 key,
// $2 hash, $3 project, $4 provider, $5 service, $6 currency, $7 amount,
// $8 at, $9 recorded, then per counter (sorted) provider, window.
func (s *Store) usageStatement(n int) string {
	return s.q.generated("pg-usage", n, func(n int) string {
		t := s.t
		var b strings.Builder
		b.WriteString(`WITH dup AS (
	SELECT ` + usageCols + ` FROM ` + t.usage + ` WHERE idem_key = $1
), ins AS (
	INSERT INTO ` + t.usage + ` (` + usageCols + `)
	SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS TEXT), CAST($5 AS TEXT), CAST($6 AS TEXT),
		CAST($7 AS BIGINT), CAST($8 AS BIGINT), CAST($9 AS BIGINT)
	WHERE NOT EXISTS (SELECT 1 FROM dup)
	RETURNING ` + usageCols + `
), c (provider, win) AS (
	`)
		writeRows(&b, n, 10, "TEXT", "TEXT")
		b.WriteString(`
), up AS (
	INSERT INTO ` + t.counters + ` AS k (project, provider, win, committed, held, arrears)
	SELECT CAST($3 AS TEXT), c.provider, c.win, 0, 0, CAST($7 AS BIGINT) FROM c
	WHERE EXISTS (SELECT 1 FROM ins)
	ORDER BY c.provider, c.win
	ON CONFLICT (project, provider, win) DO UPDATE SET arrears = k.arrears + excluded.arrears
	RETURNING 1
)
SELECT false, ` + usageCols + ` FROM ins
UNION ALL
SELECT true, ` + usageCols + ` FROM dup`)
		return b.String()
	})
}

func (s *Store) applyUsagePostgres(ctx context.Context, r *usageReq) (budget.UsageEntry, bool, error) {
	args := []any{r.Key, r.RequestHash, r.Scope.Project, r.Scope.Provider, r.Service, r.Amount.Currency, r.Amount.Amount, r.at, r.now}
	for _, c := range r.sorted {
		args = append(args, c.Provider, string(c.Window))
	}
	q := s.usageStatement(len(r.sorted))
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var replayed bool
		u, err := scanUsage(s.db.QueryRowContext(ctx, q, args...), &replayed)
		switch {
		case err == nil:
			if replayed {
				return replayUsage(u, r.UsageRequest)
			}
			return u.UsageEntry, false, nil
		case sqlState(err) == sqlStateUniqueViolation:
			continue // a concurrent report with this key committed: replay it
		default:
			return budget.UsageEntry{}, false, dbErr("apply usage", err)
		}
	}
	return budget.UsageEntry{}, false, dbErr("apply usage", errContention)
}

// setCapPostgres stores the cap and appends the history record in one
// statement; the upsert itself reports the limit it replaced.
func (s *Store) setCapPostgres(ctx context.Context, rec budget.CapRecord, at int64) (*budget.Money, error) {
	q := s.q.generated("pg-setcap", 0, func(int) string {
		t := s.t
		return `WITH up AS (
	INSERT INTO ` + t.caps + ` AS k (project, provider, period, limit_amount, currency, previous_amount, previous_currency)
	VALUES ($1, $2, $3, $4, $5, NULL, NULL)
	ON CONFLICT (project, provider, period) DO UPDATE
	SET limit_amount = excluded.limit_amount, currency = excluded.currency,
		previous_amount = k.limit_amount, previous_currency = k.currency
	RETURNING previous_amount, previous_currency
), hist AS (
	INSERT INTO ` + t.capHistory + ` (project, provider, period, limit_amount, currency, previous_amount, previous_currency, by_kind, by_id, reason, at)
	SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS BIGINT), CAST($5 AS TEXT), up.previous_amount, up.previous_currency,
		CAST($6 AS TEXT), CAST($7 AS TEXT), CAST($8 AS TEXT), CAST($9 AS BIGINT)
	FROM up
	RETURNING previous_amount, previous_currency
)
SELECT previous_amount, previous_currency FROM hist`
	})
	var (
		amount   sql.NullInt64
		currency sql.NullString
	)
	err := s.db.QueryRowContext(ctx, q, rec.Key.Project, rec.Key.Provider, string(rec.Key.Period), rec.Limit.Amount, rec.Limit.Currency,
		string(rec.By.Kind), rec.By.ID, rec.Reason, at).Scan(&amount, &currency)
	if err != nil {
		return nil, err
	}
	return nullMoney(amount, currency), nil
}

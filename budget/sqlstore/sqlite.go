package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/agentprov/agentprov/budget"
)

// SQLite: each contract step is one BEGIN IMMEDIATE transaction, which takes
// the database's write lock before its first read, so the reads that decide
// and the writes that follow are indivisible; with one connection, callers
// queue in Go. Commits are on disk before they return (WAL,
// synchronous=FULL).

func (s *Store) reserveSQLite(ctx context.Context, r *reserveReq) (h budget.Hold, replayed bool, err error) {
	t := s.t
	// verdictErr is a contract answer; err a failure of the transaction.
	var verdictErr error
	err = s.inTx(ctx, func(tx querier) error {
		stored, found, err := s.holdByKey(ctx, tx, r.Key)
		if err != nil {
			return err
		}
		if found {
			h, replayed, verdictErr = replay(stored, r.ReserveRequest)
			return nil
		}
		if _, taken, err := s.holdByID(ctx, tx, r.HoldID); err != nil || taken {
			if taken {
				verdictErr = fail(budget.ErrInvalidRequest, "hold id %q already exists", r.HoldID)
			}
			return err
		}
		us, err := s.readUsage(ctx, tx, r.Checks)
		if err != nil {
			return err
		}
		if firstOver(us, r.Amount.Amount) != nil {
			// Expired holds still in the sums may be what refuses it.
			if err := s.reclaimSQLite(ctx, tx, r.Scope.Project, r.now); err != nil {
				return err
			}
			if us, err = s.readUsage(ctx, tx, r.Checks); err != nil {
				return err
			}
			if ce := firstOver(us, r.Amount.Amount); ce != nil {
				verdictErr = ce
				return nil // commit the reclaim
			}
		}
		if n := len(r.sorted); n > 0 {
			// One multi-row statement each for the counters (in lock order)
			// and the hold's links to them.
			args := make([]any, 0, 2+2*n)
			args = append(args, r.Scope.Project, r.Amount.Amount)
			for _, c := range r.sorted {
				args = append(args, c.Counter.Provider, string(c.Counter.Window))
			}
			if _, err := tx.ExecContext(ctx, s.sqliteCounterUpsert(n, "held"), args...); err != nil {
				return err
			}
			args[0], args[1] = r.HoldID, nil
			if _, err := tx.ExecContext(ctx, s.sqliteLinks(n), append(args[:1], args[2:]...)...); err != nil {
				return err
			}
		}
		ins := s.dialect.Rebind(`INSERT INTO ` + t.holds + ` (` + holdCols + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 'active', $10, $11, NULL, '')
RETURNING ` + holdCols)
		got, err := scanHold(tx.QueryRowContext(ctx, ins, r.HoldID, r.Key, r.RequestHash, r.Scope.Project, r.Scope.Provider,
			r.Service, r.Memo, r.Amount.Currency, r.Amount.Amount, r.now, r.expires))
		if err != nil {
			return err
		}
		h = got.Hold
		return nil
	})
	if err != nil {
		return budget.Hold{}, false, dbErr("reserve", err)
	}
	if verdictErr != nil {
		return budget.Hold{}, false, verdictErr
	}
	return h, replayed, nil
}

// reclaimSQLite ends the active holds of project expired at now and takes
// them out of their counters.
func (s *Store) reclaimSQLite(ctx context.Context, tx querier, project string, now int64) error {
	t := s.t
	expired := `SELECT 1 FROM ` + t.holds + ` h JOIN ` + t.holdCounters + ` hc ON hc.hold_id = h.id
	WHERE h.project = $1 AND h.state = 'active' AND h.expires_at <= $2
	AND hc.provider = ` + t.counters + `.provider AND hc.win = ` + t.counters + `.win`
	dec := s.dialect.Rebind(`UPDATE ` + t.counters + `
SET held = held - (SELECT COALESCE(SUM(h.amount), 0) FROM ` + t.holds + ` h JOIN ` + t.holdCounters + ` hc ON hc.hold_id = h.id
	WHERE h.project = $1 AND h.state = 'active' AND h.expires_at <= $2
	AND hc.provider = ` + t.counters + `.provider AND hc.win = ` + t.counters + `.win)
WHERE project = $1 AND EXISTS (` + expired + `)`)
	if _, err := tx.ExecContext(ctx, dec, project, now); err != nil {
		return err
	}
	end := s.dialect.Rebind(`UPDATE ` + t.holds + ` SET state = 'expired', ended_at = expires_at
WHERE project = $1 AND state = 'active' AND expires_at <= $2`)
	_, err := tx.ExecContext(ctx, end, project, now)
	return err
}

// moveSQLite changes hold id by set and its counters by the deltas.
func (s *Store) moveSQLite(ctx context.Context, tx querier, h storedHold, set string, setArgs []any, dCommitted, dHeld int64) (storedHold, error) {
	t := s.t
	args := append([]any{h.ID}, setArgs...)
	got, err := scanHold(tx.QueryRowContext(ctx, s.dialect.Rebind(`UPDATE `+t.holds+` SET `+set+` WHERE id = $1 RETURNING `+holdCols), args...))
	if err != nil {
		return storedHold{}, err
	}
	upd := s.dialect.Rebind(`UPDATE ` + t.counters + ` SET committed = committed + $1, held = held + $2
WHERE project = $3 AND (provider, win) IN (SELECT provider, win FROM ` + t.holdCounters + ` WHERE hold_id = $4)`)
	if _, err := tx.ExecContext(ctx, upd, dCommitted, dHeld, h.Scope.Project, h.ID); err != nil {
		return storedHold{}, err
	}
	return got, nil
}

func (s *Store) transitionSQLite(ctx context.Context, r *transitionReq) (h budget.Hold, err error) {
	var verdictErr error
	err = s.inTx(ctx, func(tx querier) error {
		stored, found, err := s.holdByID(ctx, tx, r.HoldID)
		if err != nil {
			return err
		}
		v, jerr := judge(stored, found, r)
		switch v {
		case vDone:
			h, verdictErr = stored.Hold, jerr
			return nil
		case vExpire:
			got, err := s.moveSQLite(ctx, tx, stored, `state = 'expired', ended_at = expires_at`, nil, 0, -stored.Amount.Amount)
			if err != nil {
				return err
			}
			h, verdictErr = got.Hold, expiredErr(got)
			return nil
		}
		var got storedHold
		switch r.To {
		case budget.HoldCommitted:
			got, err = s.moveSQLite(ctx, tx, stored, `state = 'committed', committed = $2, ended_at = $3`,
				[]any{r.Actual.Amount, r.now}, r.Actual.Amount, -stored.Amount.Amount)
		case budget.HoldReleased:
			got, err = s.moveSQLite(ctx, tx, stored, `state = 'released', ended_at = $2`, []any{r.now}, 0, -stored.Amount.Amount)
		case budget.HoldReversed:
			got, err = s.moveSQLite(ctx, tx, stored, `state = 'reversed', reason = $2`, []any{r.Reason}, -stored.Committed.Amount, 0)
		}
		if err != nil {
			return err
		}
		h = got.Hold
		return nil
	})
	if err != nil {
		return budget.Hold{}, dbErr("transition", err)
	}
	return h, verdictErr
}

func (s *Store) applyUsageSQLite(ctx context.Context, r *usageReq) (e budget.UsageEntry, replayed bool, err error) {
	t := s.t
	var verdictErr error
	err = s.inTx(ctx, func(tx querier) error {
		stored, err := scanUsage(tx.QueryRowContext(ctx, s.q.usageByKey, r.Key))
		switch {
		case err == nil:
			e, replayed, verdictErr = replayUsage(stored, r.UsageRequest)
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		ins := s.dialect.Rebind(`INSERT INTO ` + t.usage + ` (` + usageCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ` + usageCols)
		got, err := scanUsage(tx.QueryRowContext(ctx, ins, r.Key, r.RequestHash, r.Scope.Project, r.Scope.Provider, r.Service,
			r.Amount.Currency, r.Amount.Amount, r.at, r.now))
		if err != nil {
			return err
		}
		if n := len(r.sorted); n > 0 {
			args := make([]any, 0, 2+2*n)
			args = append(args, r.Scope.Project, r.Amount.Amount)
			for _, c := range r.sorted {
				args = append(args, c.Provider, string(c.Window))
			}
			if _, err := tx.ExecContext(ctx, s.sqliteCounterUpsert(n, "arrears"), args...); err != nil {
				return err
			}
		}
		e = got.UsageEntry
		return nil
	})
	if err != nil {
		return budget.UsageEntry{}, false, dbErr("apply usage", err)
	}
	return e, replayed, verdictErr
}

func (s *Store) setCapSQLite(ctx context.Context, rec budget.CapRecord, at int64) (prev *budget.Money, err error) {
	t := s.t
	err = s.inTx(ctx, func(tx querier) error {
		up := s.dialect.Rebind(`INSERT INTO ` + t.caps + ` (project, provider, period, limit_amount, currency, previous_amount, previous_currency)
VALUES ($1, $2, $3, $4, $5, NULL, NULL)
ON CONFLICT (project, provider, period) DO UPDATE
SET limit_amount = excluded.limit_amount, currency = excluded.currency,
	previous_amount = limit_amount, previous_currency = currency
RETURNING previous_amount, previous_currency`)
		var (
			amount   sql.NullInt64
			currency sql.NullString
		)
		if err := tx.QueryRowContext(ctx, up, rec.Key.Project, rec.Key.Provider, string(rec.Key.Period), rec.Limit.Amount, rec.Limit.Currency).Scan(&amount, &currency); err != nil {
			return err
		}
		hist := s.dialect.Rebind(`INSERT INTO ` + t.capHistory + ` (project, provider, period, limit_amount, currency, previous_amount, previous_currency, by_kind, by_id, reason, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`)
		if _, err := tx.ExecContext(ctx, hist, rec.Key.Project, rec.Key.Provider, string(rec.Key.Period), rec.Limit.Amount, rec.Limit.Currency,
			amount, currency, string(rec.By.Kind), rec.By.ID, rec.Reason, at); err != nil {
			return err
		}
		prev = nullMoney(amount, currency)
		return nil
	})
	return prev, err
}

// sqliteCounterUpsert adds $2 to column col of n counters of project $1,
// given as (provider, window) pairs from $3 on, creating them as needed.
func (s *Store) sqliteCounterUpsert(n int, col string) string {
	return s.q.generated("sqlite-add-"+col, n, func(n int) string {
		var b strings.Builder
		b.WriteString(`INSERT INTO ` + s.t.counters + ` (project, provider, win, committed, held, arrears) VALUES `)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			held, arrears := "0", "0"
			if col == "held" {
				held = "$2"
			} else {
				arrears = "$2"
			}
			fmt.Fprintf(&b, "($1, $%d, $%d, 0, %s, %s)", 3+2*i, 4+2*i, held, arrears)
		}
		b.WriteString(` ON CONFLICT (project, provider, win) DO UPDATE SET ` + col + ` = ` + col + ` + excluded.` + col)
		return s.dialect.Rebind(b.String())
	})
}

// sqliteLinks records that hold $1 counts in n counters, given as
// (provider, window) pairs from $2 on.
func (s *Store) sqliteLinks(n int) string {
	return s.q.generated("sqlite-links", n, func(n int) string {
		var b strings.Builder
		b.WriteString(`INSERT INTO ` + s.t.holdCounters + ` (hold_id, provider, win) VALUES `)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "($1, $%d, $%d)", 2+2*i, 3+2*i)
		}
		return s.dialect.Rebind(b.String())
	})
}

package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentprov/agentprov/budget"
)

// MinPurgeAge is how far before now a purge cutoff must lie at least.
// Purge refuses a later cutoff with a *CutoffError: the protocol lets a
// client replay a request for at least 24 hours, and a replay of a purged
// hold's key would reserve anew instead of answering the stored hold.
const MinPurgeAge = 24 * time.Hour

// RecommendedPurgeAge is the cutoff age this package recommends: longer
// than the Ledger's maximum hold TTL (7 days by default) plus the
// protocol's 24-hour idempotency minimum, with room for late reversals.
const RecommendedPurgeAge = 30 * 24 * time.Hour

// purgeBatch bounds the rows one purge statement deletes, so that a purge
// never holds row locks on a busy table for long.
const purgeBatch = 1000

// ErrCutoffTooRecent is matched (errors.Is) by the *CutoffError Purge
// returns for a cutoff later than now minus MinPurgeAge.
var ErrCutoffTooRecent = errors.New("budget/sqlstore: purge cutoff is too recent")

// CutoffError reports a purge cutoff later than the latest one allowed.
type CutoffError struct {
	Before time.Time // the cutoff asked for
	Latest time.Time // now minus MinPurgeAge
}

// Error says why nothing was deleted: the cutoff is too close to now.
func (e *CutoffError) Error() string {
	return fmt.Sprintf("budget/sqlstore: purge cutoff %s is later than %s (now minus %v); nothing was deleted",
		e.Before.UTC().Format(time.RFC3339), e.Latest.UTC().Format(time.RFC3339), MinPurgeAge)
}

// Unwrap lets errors.Is match ErrCutoffTooRecent.
func (e *CutoffError) Unwrap() error { return ErrCutoffTooRecent }

// PurgeStats counts the rows a Purge deleted.
type PurgeStats struct {
	Holds        int64 // ended holds
	HoldLinks    int64 // their rows linking them to counters
	UsageEntries int64 // usage records (idempotency records of ApplyUsage)
	AlertMarks   int64 // alert-delivered marks
}

// zoneMargin covers every time zone's offset from UTC (−12 h … +14 h), so
// that a window judged closed in UTC is closed in the Ledger's zone too:
// the store does not know which Location the Ledger uses.
const zoneMargin = 14 * time.Hour

// Purge deletes, in batches of at most 1000 rows per statement, what no
// counter and no open window needs any more:
//
//   - holds that ended (committed, released, expired, reversed) before
//     before, with their counter links; active holds are never deleted;
//   - usage entries recorded before before for usage that happened before
//     before;
//   - alert marks whose window ended before before (judged in every time
//     zone); marks whose key does not name a window (not written by a
//     Ledger) go when they were recorded before before.
//
// Counters keep sums, not derivations of these rows, so a purge changes no
// counter, usage or remaining amount. It does end idempotency for what it
// deletes: a replayed reservation or usage key then reserves or records
// anew, and a purged committed hold can no longer be reversed
// (ErrHoldNotFound). Hence before must be older than any idempotency
// window callers rely on — RecommendedPurgeAge ago or earlier — and Purge
// refuses, with a *CutoffError matching ErrCutoffTooRecent, a cutoff later
// than now minus MinPurgeAge (now from Options.Now).
//
// Purge stops at the first error or when ctx is done, returning what it
// deleted so far; every batch commits on its own, so running it again
// continues. It is safe to run concurrently with all other operations and
// with other Purges.
func (s *Store) Purge(ctx context.Context, before time.Time) (PurgeStats, error) {
	var st PurgeStats
	if latest := s.now().Add(-MinPurgeAge); before.After(latest) {
		return st, &CutoffError{Before: before, Latest: latest}
	}
	cut, err := nanos("purge cutoff", before)
	if err != nil {
		return st, err
	}
	if err := s.purgeHolds(ctx, cut, &st); err != nil {
		return st, dbErr("purge holds", err)
	}
	if err := s.purgeUsage(ctx, cut, &st); err != nil {
		return st, dbErr("purge usage", err)
	}
	if err := s.purgeAlerts(ctx, before, cut, &st); err != nil {
		return st, dbErr("purge alerts", err)
	}
	return st, nil
}

// placeholders returns "$from, …, $(from+n-1)".
func placeholders(from, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}

// purgeKeyed walks a table in primary-key order, reading at most
// purgeBatch eligible keys per step with sel (arguments: cursor, cut) and
// deleting them with del in the same transaction. The cursor is the last
// key the database returned, so the walk follows the database's collation
// and reads the table once.
func (s *Store) purgeKeyed(ctx context.Context, sel string, cut int64, st *PurgeStats, del func(tx querier, keys []any) (PurgeStats, error)) error {
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var (
			n     int
			batch PurgeStats
		)
		err := s.inTx(ctx, func(tx querier) error {
			rows, err := tx.QueryContext(ctx, sel, after, cut)
			if err != nil {
				return err
			}
			var keys []any
			for rows.Next() {
				var k string
				if err := rows.Scan(&k); err != nil {
					rows.Close()
					return err
				}
				keys = append(keys, k)
				after = k
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if n = len(keys); n == 0 {
				return nil
			}
			batch, err = del(tx, keys)
			return err
		})
		if err != nil {
			return err
		}
		// Counted once committed.
		st.Holds += batch.Holds
		st.HoldLinks += batch.HoldLinks
		st.UsageEntries += batch.UsageEntries
		if n < purgeBatch {
			return nil
		}
	}
}

func rowsAffected(res interface{ RowsAffected() (int64, error) }, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *Store) purgeHolds(ctx context.Context, cut int64, st *PurgeStats) error {
	t := s.t
	sel := s.dialect.Rebind(`SELECT id FROM ` + t.holds + ` WHERE id > $1 AND state <> 'active' AND ended_at IS NOT NULL AND ended_at < $2
ORDER BY id LIMIT ` + fmt.Sprint(purgeBatch))
	return s.purgeKeyed(ctx, sel, cut, st, func(tx querier, ids []any) (PurgeStats, error) {
		in := placeholders(1, len(ids))
		// An ended hold never becomes active again; the state is checked
		// once more all the same.
		holds, err := rowsAffected(tx.ExecContext(ctx, s.dialect.Rebind(`DELETE FROM `+t.holds+` WHERE id IN (`+in+`) AND state <> 'active'`), ids...))
		if err != nil {
			return PurgeStats{}, err
		}
		links, err := rowsAffected(tx.ExecContext(ctx, s.dialect.Rebind(`DELETE FROM `+t.holdCounters+` WHERE hold_id IN (`+in+`)`), ids...))
		return PurgeStats{Holds: holds, HoldLinks: links}, err
	})
}

func (s *Store) purgeUsage(ctx context.Context, cut int64, st *PurgeStats) error {
	t := s.t
	sel := s.dialect.Rebind(`SELECT idem_key FROM ` + t.usage + ` WHERE idem_key > $1 AND recorded_at < $2 AND at < $2
ORDER BY idem_key LIMIT ` + fmt.Sprint(purgeBatch))
	return s.purgeKeyed(ctx, sel, cut, st, func(tx querier, keys []any) (PurgeStats, error) {
		n, err := rowsAffected(tx.ExecContext(ctx, s.dialect.Rebind(`DELETE FROM `+t.usage+` WHERE idem_key IN (`+placeholders(1, len(keys))+`)`), keys...))
		return PurgeStats{UsageEntries: n}, err
	})
}

// purgeAlerts reads the marks in key order, judges each key's window here
// (SQL cannot parse windows portably) and deletes the closed ones.
func (s *Store) purgeAlerts(ctx context.Context, before time.Time, cut int64, st *PurgeStats) error {
	t := s.t
	page := s.dialect.Rebind(`SELECT alert_key, at FROM ` + t.alerts + ` WHERE alert_key > $1 ORDER BY alert_key LIMIT ` + fmt.Sprint(purgeBatch))
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rows, err := s.db.QueryContext(ctx, page, after)
		if err != nil {
			return err
		}
		var (
			seen int
			del  []any
		)
		for rows.Next() {
			var (
				k  string
				at int64
			)
			if err := rows.Scan(&k, &at); err != nil {
				rows.Close()
				return err
			}
			seen++
			after = k
			if alertExpired(k, at, before, cut) {
				del = append(del, k)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(del) > 0 {
			res, err := s.db.ExecContext(ctx, s.dialect.Rebind(`DELETE FROM `+t.alerts+` WHERE alert_key IN (`+placeholders(1, len(del))+`)`), del...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			st.AlertMarks += n
		}
		if seen < purgeBatch {
			return nil
		}
	}
}

// alertExpired reports whether the mark key (recorded at nanoseconds at)
// may go. The Ledger's keys read "alert:<project>/<provider>/<window>/<x>";
// window strings hold no '/', so the window is the second segment from the
// end.
func alertExpired(key string, at int64, before time.Time, cut int64) bool {
	if at >= cut {
		return false
	}
	rest, _, ok := cutLast(key)
	if !ok {
		return true
	}
	_, win, ok := cutLast(rest)
	if !ok {
		return true
	}
	w, err := budget.ParseWindow(win)
	if err != nil {
		return true // not a window: no period depends on the mark
	}
	_, end, err := w.Bounds(time.UTC)
	if err != nil {
		return false
	}
	return !end.Add(zoneMargin).After(before)
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

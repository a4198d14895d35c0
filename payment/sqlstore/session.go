package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paywall"
)

// SessionStore is a paywall.SessionStore on database/sql: a provider's
// metered sessions (§5.9), durable across restarts and shared by every
// Paywall instance on the database, so that what a session consumed is
// never forgotten (and so never left unredeemed) and a sequence number
// accepted by one instance is refused by all others.
//
// Open is one INSERT … ON CONFLICT DO NOTHING (put-if-absent). Every
// transition runs the paywall.SessionRecord Apply method of the same name
// between a read of the record and an UPDATE … WHERE version = … of it:
// on PostgreSQL inside one transaction whose read locks the row (SELECT …
// FOR UPDATE), so concurrent calls on one session queue on the row lock
// instead of retrying; on SQLite as a compare-and-set retried while
// another process wins it. Due is one query over indexed columns. A
// *SessionStore is safe for concurrent use.
type SessionStore struct {
	db      *sql.DB
	dialect Dialect
	q       sessionQueries
}

var _ paywall.SessionStore = (*SessionStore)(nil)

type sessionQueries struct {
	open, get, getLocked, update, due string
}

// sessionCASAttempts bounds the compare-and-set retries of one SQLite
// transition; each loss means another process changed the record, so
// running out means the session is contended far beyond what one row
// serves and the call fails closed (ErrStore) rather than spin.
const sessionCASAttempts = 100

// NewSessionStore returns a SessionStore on db, creating its table
// (TablePrefix + "payment_sessions") if it does not exist. It does not
// take ownership of db. A provider needs only this table and that of
// NewChallengeStore.
func NewSessionStore(ctx context.Context, db *sql.DB, dialect Dialect, opts *Options) (*SessionStore, error) {
	prefix, err := checkArgs(db, dialect, opts)
	if err != nil {
		return nil, err
	}
	tbl := prefix + "payment_sessions"
	ddl := []string{
		`CREATE TABLE IF NOT EXISTS ` + tbl + ` (
			id TEXT PRIMARY KEY,
			version BIGINT NOT NULL,
			state TEXT NOT NULL,
			consumed BIGINT NOT NULL,
			max_amount BIGINT NOT NULL,
			deadline BIGINT NOT NULL,
			last_used BIGINT NOT NULL,
			doc TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + tbl + `_state ON ` + tbl + ` (state, last_used)`,
	}
	if err := createTables(ctx, db, ddl); err != nil {
		return nil, err
	}
	r := dialect.Rebind
	cols := `version, state, consumed, max_amount, deadline, last_used, doc`
	return &SessionStore{db: db, dialect: dialect, q: sessionQueries{
		open: r(`INSERT INTO ` + tbl + ` (id, ` + cols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (id) DO NOTHING`),
		get:       r(`SELECT doc FROM ` + tbl + ` WHERE id = $1`),
		getLocked: r(`SELECT doc FROM ` + tbl + ` WHERE id = $1 FOR UPDATE`),
		update: r(`UPDATE ` + tbl + ` SET version = $1, state = $2, consumed = $3, max_amount = $4, deadline = $5, last_used = $6, doc = $7
			WHERE id = $8 AND version = $9`),
		due: r(`SELECT doc FROM ` + tbl + `
			WHERE state = 'closing' OR (state = 'open' AND (last_used <= $1 OR deadline <= $2 OR consumed >= max_amount))
			ORDER BY id LIMIT $3`),
	}}, nil
}

// row is the record's column values in the order of the queries.
func sessionRow(r paywall.SessionRecord) ([]any, error) {
	doc, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return []any{r.Version, string(r.State), r.Consumed, r.Max.Amount, micros(r.Deadline), micros(r.LastUsed), string(doc)}, nil
}

func decodeSession(doc string) (paywall.SessionRecord, error) {
	var r paywall.SessionRecord
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return paywall.SessionRecord{}, storeErr("decode session", err)
	}
	return r, nil
}

// Open implements paywall.SessionStore.
func (s *SessionStore) Open(ctx context.Context, r paywall.SessionRecord) (paywall.SessionRecord, error) {
	if r.ID == "" {
		return paywall.SessionRecord{}, fmt.Errorf("payment/sqlstore: open session: empty id: %w", payment.ErrInvalidRequest)
	}
	r.State, r.Version = paywall.SessionOpen, 1
	row, err := sessionRow(r)
	if err != nil {
		return paywall.SessionRecord{}, storeErr("open session", err)
	}
	res, err := s.db.ExecContext(ctx, s.q.open, append([]any{r.ID}, row...)...)
	if err != nil {
		return paywall.SessionRecord{}, storeErr("open session", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return paywall.SessionRecord{}, storeErr("open session", err)
	} else if n == 1 {
		return r, nil
	}
	return s.Get(ctx, r.ID) // sessions are never deleted, so it is there
}

// Get implements paywall.SessionStore.
func (s *SessionStore) Get(ctx context.Context, id string) (paywall.SessionRecord, error) {
	return s.get(ctx, s.db, s.q.get, id)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *SessionStore) get(ctx context.Context, q queryer, query, id string) (paywall.SessionRecord, error) {
	var doc string
	err := q.QueryRowContext(ctx, query, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return paywall.SessionRecord{}, fmt.Errorf("payment/sqlstore: session %q: %w", id, payment.ErrSessionUnknown)
	}
	if err != nil {
		return paywall.SessionRecord{}, storeErr("get session", err)
	}
	return decodeSession(doc)
}

// mutate applies fn to the stored record atomically and writes the result
// when fn changed it (its Version moved). fn's error is returned with the
// record as read; fn must leave the record unchanged when it fails (the
// Apply methods do).
func (s *SessionStore) mutate(ctx context.Context, id string, fn func(*paywall.SessionRecord) error) (paywall.SessionRecord, error) {
	if s.dialect == Postgres {
		return s.mutateLocked(ctx, id, fn)
	}
	for range sessionCASAttempts {
		r, err := s.Get(ctx, id)
		if err != nil {
			return paywall.SessionRecord{}, err
		}
		old := r.Version
		if err := fn(&r); err != nil || r.Version == old {
			return r, err
		}
		ok, err := s.write(ctx, s.db, r, old)
		if err != nil {
			return paywall.SessionRecord{}, err
		}
		if ok {
			return r, nil
		}
		if err := ctx.Err(); err != nil {
			return paywall.SessionRecord{}, storeErr("update session", err)
		}
	}
	return paywall.SessionRecord{}, storeErr("update session", fmt.Errorf("session %q: lost %d compare-and-sets in a row", id, sessionCASAttempts))
}

// mutateLocked is mutate in one PostgreSQL transaction holding the row's
// lock from the read to the commit: the update cannot lose.
func (s *SessionStore) mutateLocked(ctx context.Context, id string, fn func(*paywall.SessionRecord) error) (paywall.SessionRecord, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return paywall.SessionRecord{}, storeErr("update session", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	r, err := s.get(ctx, tx, s.q.getLocked, id)
	if err != nil {
		return paywall.SessionRecord{}, err
	}
	old := r.Version
	if err := fn(&r); err != nil || r.Version == old {
		return r, err
	}
	ok, err := s.write(ctx, tx, r, old)
	if err != nil {
		return paywall.SessionRecord{}, err
	}
	if !ok { // the row is locked: only a broken invariant gets here
		return paywall.SessionRecord{}, storeErr("update session", fmt.Errorf("session %q changed under its row lock", id))
	}
	if err := tx.Commit(); err != nil {
		return paywall.SessionRecord{}, storeErr("update session", err)
	}
	return r, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// write stores r if the stored version is still old.
func (s *SessionStore) write(ctx context.Context, e execer, r paywall.SessionRecord, old int64) (bool, error) {
	row, err := sessionRow(r)
	if err != nil {
		return false, storeErr("update session", err)
	}
	res, err := e.ExecContext(ctx, s.q.update, append(row, r.ID, old)...)
	if err != nil {
		return false, storeErr("update session", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, storeErr("update session", err)
	}
	return n == 1, nil
}

// Consume implements paywall.SessionStore.
func (s *SessionStore) Consume(ctx context.Context, id string, seq uint64, amount int64, now time.Time) (paywall.SessionRecord, error) {
	r, err := s.mutate(ctx, id, func(r *paywall.SessionRecord) error { return r.ApplyConsume(seq, amount, now) })
	if err != nil {
		return paywall.SessionRecord{}, err
	}
	return r, nil
}

// Finish implements paywall.SessionStore.
func (s *SessionStore) Finish(ctx context.Context, id string, amount int64, refund bool) error {
	_, err := s.mutate(ctx, id, func(r *paywall.SessionRecord) error { r.ApplyFinish(amount, refund); return nil })
	return err
}

// Close implements paywall.SessionStore.
func (s *SessionStore) Close(ctx context.Context, id string, now time.Time) (paywall.SessionRecord, error) {
	return s.mutate(ctx, id, func(r *paywall.SessionRecord) error { return r.ApplyClose(now) })
}

// Settle implements paywall.SessionStore.
func (s *SessionStore) Settle(ctx context.Context, id string, amount int64, reference string) error {
	_, err := s.mutate(ctx, id, func(r *paywall.SessionRecord) error {
		_, err := r.ApplySettle(amount, reference)
		return err
	})
	return err
}

// Due implements paywall.SessionStore.
func (s *SessionStore) Due(ctx context.Context, now, idleBefore time.Time, limit int) ([]paywall.SessionRecord, error) {
	n := int64(limit)
	if limit <= 0 {
		n = math.MaxInt32
	}
	rows, err := s.db.QueryContext(ctx, s.q.due, micros(idleBefore), micros(now), n)
	if err != nil {
		return nil, storeErr("due sessions", err)
	}
	defer rows.Close()
	var out []paywall.SessionRecord
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, storeErr("due sessions", err)
		}
		r, err := decodeSession(doc)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr("due sessions", err)
	}
	return out, nil
}

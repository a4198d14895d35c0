// Package sqlstore keeps payment redemption records and idempotency
// records (orchestrator side) and 402 challenge records and metered
// sessions (provider side) in SQLite or PostgreSQL through database/sql. A
// *Store is both a issuer.RedemptionStore and a payment.IdempotencyStore;
// a *ChallengeStore is a paywall.ChallengeStore; a *SessionStore is a
// paywall.SessionStore. Every operation is atomic (INSERT … ON CONFLICT
// for put-if-absent, UPDATE … WHERE version = … for compare-and-set, and
// for sessions on PostgreSQL a row lock held from read to write), so any
// number of processes may share one database.
//
// The caller brings the driver (modernc.org/sqlite as "sqlite",
// github.com/jackc/pgx/v5/stdlib as "pgx"); this package imports none.
//
// # Roles
//
// Orchestrator side: Store, under the Issuer's redemptions and the
// Idempotent middleware. Provider side: ChallengeStore, under a Paywall run
// by several instances (paywall.PaywallOptions.Store), and SessionStore,
// under its metered sessions (paywall.SessionOptions.Store), which keeps
// what every session consumed across restarts so it is always redeemed.
//
// # Stores
//
// Redemption records are kept whole as JSON next to the columns the
// queries need (state, version, next attempt time). Idempotency records
// keep the response for replay. PurgeIdempotency deletes records whose
// lease or retention is over. Challenge records keep the claiming
// credential's fingerprint, the state and the withheld or final response;
// ChallengeStore.Purge deletes those past their retention.
//
// # Concurrency
//
// A *Store is safe for concurrent use.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/agentprov/agentprov/internal/sqldb"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

// Dialect names the SQL flavour of the database handed to New (an alias of
// the internal plumbing's type, so callers never import internal packages).
type Dialect = sqldb.Dialect

// The supported dialects.
const (
	// SQLite is SQLite 3.35 or later, opened with one connection
	// (see sqldb.OpenSQLite's settings: WAL, synchronous=FULL).
	SQLite = sqldb.SQLite
	// Postgres is PostgreSQL 13 or later at READ COMMITTED.
	Postgres = sqldb.Postgres
)

// Options configure a Store. The zero value (or nil) gives the defaults.
type Options struct {
	// TablePrefix is prepended to table and index names; it must match
	// [a-z_][a-z0-9_]{0,31}. Empty means "agentprov_".
	TablePrefix string
}

// Store is a RedemptionStore and an IdempotencyStore on database/sql. It
// is safe for concurrent use, also by several processes sharing the
// database.
type Store struct {
	db *sql.DB
	d  Dialect
	q  queries
}

var (
	_ issuer.RedemptionStore   = (*Store)(nil)
	_ payment.IdempotencyStore = (*Store)(nil)
)

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,31}$`)

type queries struct {
	create, get, update, exists, due         string
	begin, idemGet, complete, abandon, purge string
}

// New returns a Store on db, creating its tables if they do not exist. New
// does not take ownership of db.
func New(ctx context.Context, db *sql.DB, dialect Dialect, opts *Options) (*Store, error) {
	prefix, err := checkArgs(db, dialect, opts)
	if err != nil {
		return nil, err
	}
	red, idem := prefix+"payment_redemptions", prefix+"payment_idempotency"
	ddl := []string{
		`CREATE TABLE IF NOT EXISTS ` + red + ` (
			hold_id TEXT PRIMARY KEY,
			state TEXT NOT NULL,
			version BIGINT NOT NULL,
			open INTEGER NOT NULL,
			next_attempt_at BIGINT NOT NULL,
			doc TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + red + `_due ON ` + red + ` (open, next_attempt_at)`,
		`CREATE TABLE IF NOT EXISTS ` + idem + ` (
			idem_key TEXT PRIMARY KEY,
			fingerprint TEXT NOT NULL,
			done INTEGER NOT NULL,
			deadline BIGINT NOT NULL,
			response TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + idem + `_deadline ON ` + idem + ` (deadline)`,
	}
	if err := createTables(ctx, db, ddl); err != nil {
		return nil, err
	}
	r := dialect.Rebind
	s := &Store{db: db, d: dialect, q: queries{
		create: r(`INSERT INTO ` + red + ` (hold_id, state, version, open, next_attempt_at, doc) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (hold_id) DO NOTHING`),
		get:    r(`SELECT doc FROM ` + red + ` WHERE hold_id = $1`),
		update: r(`UPDATE ` + red + ` SET state = $1, version = $2, open = $3, next_attempt_at = $4, doc = $5 WHERE hold_id = $6 AND version = $7`),
		exists: r(`SELECT version FROM ` + red + ` WHERE hold_id = $1`),
		due:    r(`SELECT doc FROM ` + red + ` WHERE open = 1 AND next_attempt_at <= $1 ORDER BY next_attempt_at, hold_id LIMIT $2`),
		begin: r(`INSERT INTO ` + idem + ` (idem_key, fingerprint, done, deadline, response) VALUES ($1, $2, 0, $3, '')
			ON CONFLICT (idem_key) DO UPDATE SET fingerprint = excluded.fingerprint, done = 0, deadline = excluded.deadline, response = ''
			WHERE ` + idem + `.deadline <= $4`),
		idemGet:  r(`SELECT fingerprint, done, deadline, response FROM ` + idem + ` WHERE idem_key = $1`),
		complete: r(`UPDATE ` + idem + ` SET done = 1, deadline = $1, response = $2 WHERE idem_key = $3 AND fingerprint = $4 AND done = 0`),
		abandon:  r(`DELETE FROM ` + idem + ` WHERE idem_key = $1 AND fingerprint = $2 AND done = 0`),
		purge:    r(`DELETE FROM ` + idem + ` WHERE deadline <= $1`),
	}}
	return s, nil
}

// checkArgs validates the constructor arguments shared by New and
// NewChallengeStore and returns the table prefix.
func checkArgs(db *sql.DB, dialect Dialect, opts *Options) (string, error) {
	if db == nil {
		return "", errors.New("payment/sqlstore: db must not be nil")
	}
	if !dialect.Valid() {
		return "", fmt.Errorf("payment/sqlstore: dialect %v is not supported", dialect)
	}
	prefix := "agentprov_"
	if opts != nil && opts.TablePrefix != "" {
		prefix = opts.TablePrefix
	}
	if !prefixRE.MatchString(prefix) {
		return "", fmt.Errorf("payment/sqlstore: table prefix %q must match %s", prefix, prefixRE)
	}
	return prefix, nil
}

func createTables(ctx context.Context, db *sql.DB, ddl []string) error {
	for _, stmt := range ddl {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("payment/sqlstore: create tables: %w", err)
		}
	}
	return nil
}

func storeErr(op string, err error) error {
	return fmt.Errorf("payment/sqlstore: %s: %w (%w)", op, payment.ErrStore, err)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func openFlag(r issuer.Redemption) int {
	if r.State.Final() {
		return 0
	}
	return 1
}

// Create implements issuer.RedemptionStore.
func (s *Store) Create(ctx context.Context, r issuer.Redemption) (issuer.Redemption, bool, error) {
	if r.HoldID == "" || r.Version != 1 {
		return issuer.Redemption{}, false, fmt.Errorf("payment/sqlstore: create: %w", payment.ErrInvalidRequest)
	}
	doc, err := json.Marshal(r)
	if err != nil {
		return issuer.Redemption{}, false, storeErr("create", err)
	}
	res, err := s.db.ExecContext(ctx, s.q.create, r.HoldID, string(r.State), r.Version, openFlag(r), micros(r.NextAttemptAt), string(doc))
	if err != nil {
		return issuer.Redemption{}, false, storeErr("create", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return issuer.Redemption{}, false, storeErr("create", err)
	} else if n == 1 {
		return r, true, nil
	}
	old, err := s.Get(ctx, r.HoldID)
	return old, false, err
}

// Get implements issuer.RedemptionStore.
func (s *Store) Get(ctx context.Context, holdID string) (issuer.Redemption, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, s.q.get, holdID).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return issuer.Redemption{}, payment.ErrNotFound
	}
	if err != nil {
		return issuer.Redemption{}, storeErr("get", err)
	}
	return decode(doc)
}

func decode(doc string) (issuer.Redemption, error) {
	var r issuer.Redemption
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return issuer.Redemption{}, storeErr("decode", err)
	}
	return r, nil
}

// Update implements issuer.RedemptionStore.
func (s *Store) Update(ctx context.Context, r issuer.Redemption) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return storeErr("update", err)
	}
	res, err := s.db.ExecContext(ctx, s.q.update, string(r.State), r.Version, openFlag(r), micros(r.NextAttemptAt), string(doc), r.HoldID, r.Version-1)
	if err != nil {
		return storeErr("update", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return storeErr("update", err)
	}
	if n == 1 {
		return nil
	}
	var v int64
	err = s.db.QueryRowContext(ctx, s.q.exists, r.HoldID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return payment.ErrNotFound
	}
	if err != nil {
		return storeErr("update", err)
	}
	return payment.ErrConflict
}

// Due implements issuer.RedemptionStore.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]issuer.Redemption, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.QueryContext(ctx, s.q.due, micros(now), limit)
	if err != nil {
		return nil, storeErr("due", err)
	}
	defer rows.Close()
	var out []issuer.Redemption
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, storeErr("due", err)
		}
		r, err := decode(doc)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, storeErr("due", err)
	}
	return out, nil
}

type storedResponse struct {
	Status int         `json:"status"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"body"`
}

// Begin implements payment.IdempotencyStore.
func (s *Store) Begin(ctx context.Context, key string, fingerprint []byte, now, leaseUntil time.Time) (payment.IdempotencyState, *payment.IdempotentResponse, error) {
	fp := hex.EncodeToString(fingerprint)
	// A lost upsert followed by a vanished or expired row means the record
	// changed in between (abandoned, expired); try again, a bounded number
	// of times.
	for range 5 {
		res, err := s.db.ExecContext(ctx, s.q.begin, key, fp, micros(leaseUntil), micros(now))
		if err != nil {
			return 0, nil, storeErr("begin", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, nil, storeErr("begin", err)
		} else if n == 1 {
			return payment.IdempotencyStarted, nil, nil
		}
		var (
			gotFP, resp string
			done        int
			deadline    int64
		)
		err = s.db.QueryRowContext(ctx, s.q.idemGet, key).Scan(&gotFP, &done, &deadline, &resp)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && deadline <= micros(now)) {
			continue
		}
		if err != nil {
			return 0, nil, storeErr("begin", err)
		}
		switch {
		case gotFP != fp:
			return payment.IdempotencyMismatch, nil, nil
		case done == 0:
			return payment.IdempotencyInFlight, nil, nil
		}
		var sr storedResponse
		if err := json.Unmarshal([]byte(resp), &sr); err != nil {
			return 0, nil, storeErr("begin: decode response", err)
		}
		return payment.IdempotencyCompleted, &payment.IdempotentResponse{Status: sr.Status, Header: sr.Header, Body: sr.Body}, nil
	}
	return 0, nil, storeErr("begin", errors.New("record keeps changing"))
}

// Complete implements payment.IdempotencyStore.
func (s *Store) Complete(ctx context.Context, key string, fingerprint []byte, resp payment.IdempotentResponse, keepUntil time.Time) error {
	doc, err := json.Marshal(storedResponse{Status: resp.Status, Header: resp.Header, Body: resp.Body})
	if err != nil {
		return storeErr("complete", err)
	}
	res, err := s.db.ExecContext(ctx, s.q.complete, micros(keepUntil), string(doc), key, hex.EncodeToString(fingerprint))
	if err != nil {
		return storeErr("complete", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return storeErr("complete", err)
	}
	if n != 1 {
		return payment.ErrConflict
	}
	return nil
}

// Abandon implements payment.IdempotencyStore.
func (s *Store) Abandon(ctx context.Context, key string, fingerprint []byte) error {
	if _, err := s.db.ExecContext(ctx, s.q.abandon, key, hex.EncodeToString(fingerprint)); err != nil {
		return storeErr("abandon", err)
	}
	return nil
}

// PurgeIdempotency deletes idempotency records whose lease or retention
// ended at or before now, and reports how many. Run it now and then.
func (s *Store) PurgeIdempotency(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q.purge, micros(now))
	if err != nil {
		return 0, storeErr("purge", err)
	}
	return res.RowsAffected()
}

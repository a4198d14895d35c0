package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paywall"
)

// ChallengeStore is a paywall.ChallengeStore on database/sql: the
// provider-side record that makes each payment token presented at an HTTP
// 402 single-use (records are keyed by paywall.TokenClaimKey) across every
// provider instance sharing the database. Claim is one INSERT … ON
// CONFLICT DO NOTHING (put-if-absent); Update is one UPDATE … WHERE state
// = … AND fingerprint = … (compare-and-set). A *ChallengeStore is safe for
// concurrent use.
type ChallengeStore struct {
	db *sql.DB
	q  challengeQueries
}

var _ paywall.ChallengeStore = (*ChallengeStore)(nil)

type challengeQueries struct {
	claim, get, update, purge string
}

// NewChallengeStore returns a ChallengeStore on db, creating its table
// (TablePrefix + "payment_challenges") if it does not exist. It does not
// take ownership of db. The table is separate from the orchestrator's
// tables of New, so a provider needs only this one.
func NewChallengeStore(ctx context.Context, db *sql.DB, dialect Dialect, opts *Options) (*ChallengeStore, error) {
	prefix, err := checkArgs(db, dialect, opts)
	if err != nil {
		return nil, err
	}
	tbl := prefix + "payment_challenges"
	ddl := []string{
		`CREATE TABLE IF NOT EXISTS ` + tbl + ` (
			challenge_id TEXT PRIMARY KEY,
			fingerprint TEXT NOT NULL,
			state TEXT NOT NULL,
			retain_until BIGINT NOT NULL,
			response TEXT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS ` + tbl + `_retain ON ` + tbl + ` (retain_until)`,
	}
	if err := createTables(ctx, db, ddl); err != nil {
		return nil, err
	}
	r := dialect.Rebind
	return &ChallengeStore{db: db, q: challengeQueries{
		claim: r(`INSERT INTO ` + tbl + ` (challenge_id, fingerprint, state, retain_until, response) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (challenge_id) DO NOTHING`),
		get:    r(`SELECT fingerprint, state, retain_until, response FROM ` + tbl + ` WHERE challenge_id = $1`),
		update: r(`UPDATE ` + tbl + ` SET state = $1, retain_until = $2, response = $3 WHERE challenge_id = $4 AND state = $5 AND fingerprint = $6`),
		purge:  r(`DELETE FROM ` + tbl + ` WHERE retain_until <= $1`),
	}}, nil
}

// encodeResponse stores a nil response as "" so that it reads back nil.
func encodeResponse(r *payment.StoredResponse) (string, error) {
	if r == nil {
		return "", nil
	}
	b, err := json.Marshal(storedResponse{Status: r.Status, Header: r.Header, Body: r.Body})
	return string(b), err
}

func decodeResponse(s string) (*payment.StoredResponse, error) {
	if s == "" {
		return nil, nil
	}
	var sr storedResponse
	if err := json.Unmarshal([]byte(s), &sr); err != nil {
		return nil, err
	}
	if sr.Body == nil {
		sr.Body = []byte{}
	}
	return &payment.StoredResponse{Status: sr.Status, Header: sr.Header, Body: sr.Body}, nil
}

// Claim implements paywall.ChallengeStore.
func (s *ChallengeStore) Claim(ctx context.Context, rec paywall.ChallengeRecord) (paywall.ChallengeRecord, bool, error) {
	if rec.ID == "" {
		return paywall.ChallengeRecord{}, false, fmt.Errorf("payment/sqlstore: claim: empty challenge id: %w", payment.ErrInvalidRequest)
	}
	resp, err := encodeResponse(rec.Response)
	if err != nil {
		return paywall.ChallengeRecord{}, false, storeErr("claim", err)
	}
	// A claim that lost and then found no row means the winner's record
	// was purged in between; try again, a bounded number of times.
	for range 3 {
		res, err := s.db.ExecContext(ctx, s.q.claim, rec.ID, rec.Fingerprint, string(rec.State), micros(rec.RetainUntil), resp)
		if err != nil {
			return paywall.ChallengeRecord{}, false, storeErr("claim", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return paywall.ChallengeRecord{}, false, storeErr("claim", err)
		} else if n == 1 {
			return rec, true, nil
		}
		cur, err := s.Get(ctx, rec.ID)
		if errors.Is(err, paywall.ErrChallengeNotFound) {
			continue
		}
		return cur, false, err
	}
	return paywall.ChallengeRecord{}, false, storeErr("claim", errors.New("record keeps changing"))
}

// Get implements paywall.ChallengeStore.
func (s *ChallengeStore) Get(ctx context.Context, id string) (paywall.ChallengeRecord, error) {
	var (
		fp, state, resp string
		until           int64
	)
	err := s.db.QueryRowContext(ctx, s.q.get, id).Scan(&fp, &state, &until, &resp)
	if errors.Is(err, sql.ErrNoRows) {
		return paywall.ChallengeRecord{}, fmt.Errorf("payment/sqlstore: challenge %q: %w", id, paywall.ErrChallengeNotFound)
	}
	if err != nil {
		return paywall.ChallengeRecord{}, storeErr("get challenge", err)
	}
	r, err := decodeResponse(resp)
	if err != nil {
		return paywall.ChallengeRecord{}, storeErr("get challenge: decode response", err)
	}
	return paywall.ChallengeRecord{
		ID: id, Fingerprint: fp, State: paywall.ChallengeState(state),
		RetainUntil: time.UnixMicro(until).UTC(), Response: r,
	}, nil
}

// Update implements paywall.ChallengeStore.
func (s *ChallengeStore) Update(ctx context.Context, from paywall.ChallengeState, rec paywall.ChallengeRecord) error {
	resp, err := encodeResponse(rec.Response)
	if err != nil {
		return storeErr("update challenge", err)
	}
	res, err := s.db.ExecContext(ctx, s.q.update, string(rec.State), micros(rec.RetainUntil), resp, rec.ID, string(from), rec.Fingerprint)
	if err != nil {
		return storeErr("update challenge", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return storeErr("update challenge", err)
	}
	if n == 1 {
		return nil
	}
	cur, err := s.Get(ctx, rec.ID)
	if err != nil {
		return err // ErrChallengeNotFound, or a store failure
	}
	return fmt.Errorf("payment/sqlstore: challenge %q is %s, not %s: %w", rec.ID, cur.State, from, payment.ErrConflict)
}

// Purge deletes challenge records whose RetainUntil is at or before now
// and reports how many. Their challenges have expired, so forgetting them
// reopens nothing. Run it now and then.
func (s *ChallengeStore) Purge(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q.purge, micros(now))
	if err != nil {
		return 0, storeErr("purge challenges", err)
	}
	return res.RowsAffected()
}

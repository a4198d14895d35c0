package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
)

// TokenStore is a provision.TokenStore in one table keyed by the token's
// SHA-256 hash; the token itself never reaches the database. Revocations
// are conditional UPDATEs (WHERE revoked_at IS NULL), so they are
// idempotent and keep the first revocation time.
//
// A TokenStore is safe for concurrent use, also across processes.
type TokenStore struct {
	c conn
}

var _ provision.TokenStore = (*TokenStore)(nil)

// NewTokenStore returns a TokenStore on db. Run Migrate before first use.
func NewTokenStore(db *sql.DB, dialect Dialect, opts *Options) (*TokenStore, error) {
	c, err := newConn(db, dialect, opts)
	if err != nil {
		return nil, err
	}
	return &TokenStore{c: c}, nil
}

// Migrate creates the token table and its account index if absent.
func (s *TokenStore) Migrate(ctx context.Context) error {
	return s.c.migrate(ctx,
		`CREATE TABLE IF NOT EXISTS {tokens} (
			hash TEXT PRIMARY KEY,
			account_id TEXT NOT NULL,
			issuer TEXT NOT NULL,
			subject TEXT NOT NULL,
			scopes TEXT NOT NULL,
			service TEXT NOT NULL,
			project TEXT NOT NULL,
			issued_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL,
			revoked_at BIGINT
		)`,
		`CREATE INDEX IF NOT EXISTS {tokens_account} ON {tokens} (account_id, issuer)`,
	)
}

// Put implements provision.TokenStore.
func (s *TokenStore) Put(ctx context.Context, t provision.IssuedToken) error {
	if t.Hash == (authz.TokenHash{}) || t.AccountID == "" || t.User.Issuer == "" || t.User.Subject == "" || t.ExpiresAt.IsZero() {
		return provision.ErrInvalidTokenRecord
	}
	for _, sc := range t.Scopes {
		// Scopes are stored space-joined: RFC 6749 scope tokens only.
		if sc == "" || strings.ContainsFunc(sc, func(r rune) bool { return r <= 0x20 || r >= 0x7f || r == '"' || r == '\\' }) {
			return provision.ErrInvalidTokenRecord
		}
	}
	res, err := s.c.db.ExecContext(ctx, s.c.q(
		`INSERT INTO {tokens} (hash, account_id, issuer, subject, scopes, service, project, issued_at, expires_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`),
		t.Hash.String(), t.AccountID, t.User.Issuer, t.User.Subject, strings.Join(t.Scopes, " "),
		t.Service, t.Project, t.IssuedAt.UnixNano(), t.ExpiresAt.UnixNano())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return provision.ErrTokenExists
	}
	return nil
}

// Lookup implements provision.TokenStore.
func (s *TokenStore) Lookup(ctx context.Context, h authz.TokenHash) (*provision.IssuedToken, error) {
	var t provision.IssuedToken
	var scopes string
	var issued, expires int64
	var revoked sql.NullInt64
	err := s.c.db.QueryRowContext(ctx, s.c.q(
		`SELECT account_id, issuer, subject, scopes, service, project, issued_at, expires_at, revoked_at
		 FROM {tokens} WHERE hash = $1`), h.String()).
		Scan(&t.AccountID, &t.User.Issuer, &t.User.Subject, &scopes, &t.Service, &t.Project, &issued, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, provision.ErrTokenNotFound
	}
	if err != nil {
		return nil, err
	}
	t.Hash = h
	t.Scopes = strings.Fields(scopes)
	t.IssuedAt = time.Unix(0, issued).UTC()
	t.ExpiresAt = time.Unix(0, expires).UTC()
	if revoked.Valid {
		t.RevokedAt = time.Unix(0, revoked.Int64).UTC()
	}
	return &t, nil
}

// Revoke implements provision.TokenStore.
func (s *TokenStore) Revoke(ctx context.Context, h authz.TokenHash, issuer string, at time.Time) (bool, error) {
	res, err := s.c.db.ExecContext(ctx, s.c.q(
		`UPDATE {tokens} SET revoked_at = $1 WHERE hash = $2 AND issuer = $3 AND revoked_at IS NULL`),
		at.UnixNano(), h.String(), issuer)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// RevokeAccount implements provision.TokenStore.
func (s *TokenStore) RevokeAccount(ctx context.Context, accountID, issuer string, at time.Time) (int, error) {
	res, err := s.c.db.ExecContext(ctx, s.c.q(
		`UPDATE {tokens} SET revoked_at = $1 WHERE account_id = $2 AND issuer = $3 AND revoked_at IS NULL`),
		at.UnixNano(), accountID, issuer)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// DeleteExpired removes tokens that expired before `before` and reports how
// many. Run it now and then with a cut-off that keeps the records your
// audit needs; correctness does not depend on it.
func (s *TokenStore) DeleteExpired(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.c.db.ExecContext(ctx, s.c.q(`DELETE FROM {tokens} WHERE expires_at < $1`), before.UnixNano())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

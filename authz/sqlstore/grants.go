package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentprov/agentprov/authz/provision"
)

// GrantStore is a provision.GrantStore in one table: the grant as JSON, its
// key (the hash of the code), its user code (unique, NULL for
// authorization codes), its expiry and a version. Put takes over rows whose
// grant has expired; Update is a conditional UPDATE on the version; Delete
// reports whether its own statement removed the row. Sharing it lets
// several provisioner instances serve one device or code flow.
//
// A GrantStore is safe for concurrent use, also across processes.
type GrantStore struct {
	c conn
}

var _ provision.GrantStore = (*GrantStore)(nil)

// NewGrantStore returns a GrantStore on db. Run Migrate before first use.
func NewGrantStore(db *sql.DB, dialect Dialect, opts *Options) (*GrantStore, error) {
	c, err := newConn(db, dialect, opts)
	if err != nil {
		return nil, err
	}
	return &GrantStore{c: c}, nil
}

// Migrate creates the grant table if absent.
func (s *GrantStore) Migrate(ctx context.Context) error {
	return s.c.migrate(ctx,
		`CREATE TABLE IF NOT EXISTS {grants} (
			grant_key TEXT PRIMARY KEY,
			user_code TEXT UNIQUE,
			expires_at BIGINT NOT NULL,
			version BIGINT NOT NULL,
			data TEXT NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS {grants_expires_at} ON {grants} (expires_at)`,
	)
}

func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// Put implements provision.GrantStore. Expired grants holding the key or the
// user code are removed first, each by its own conditional DELETE.
func (s *GrantStore) Put(ctx context.Context, g provision.Grant) error {
	if g.Key == "" || g.ExpiresAt.IsZero() {
		return errors.New("sqlstore: grant needs a key and an expiry")
	}
	data, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("sqlstore: encode grant: %w", err)
	}
	now := s.c.now.Now().UnixNano()
	if _, err := s.c.db.ExecContext(ctx, s.c.q(
		`DELETE FROM {grants} WHERE (grant_key = $1 OR user_code = $2) AND expires_at <= $3`),
		g.Key, nullable(g.UserCode), now); err != nil {
		return err
	}
	res, err := s.c.db.ExecContext(ctx, s.c.q(
		`INSERT INTO {grants} (grant_key, user_code, expires_at, version, data) VALUES ($1, $2, $3, 1, $4)
		 ON CONFLICT DO NOTHING`),
		g.Key, nullable(g.UserCode), g.ExpiresAt.UnixNano(), string(data))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return provision.ErrGrantExists
	}
	return nil
}

func (s *GrantStore) get(ctx context.Context, where string, arg any) (*provision.Grant, error) {
	var data string
	var version int64
	err := s.c.db.QueryRowContext(ctx, s.c.q(`SELECT data, version FROM {grants} WHERE `+where), arg).Scan(&data, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, provision.ErrGrantNotFound
	}
	if err != nil {
		return nil, err
	}
	var g provision.Grant
	if err := json.Unmarshal([]byte(data), &g); err != nil {
		return nil, fmt.Errorf("sqlstore: decode grant: %w", err)
	}
	g.Version = version
	return &g, nil
}

// Get implements provision.GrantStore.
func (s *GrantStore) Get(ctx context.Context, key string) (*provision.Grant, error) {
	return s.get(ctx, `grant_key = $1`, key)
}

// GetByUserCode implements provision.GrantStore.
func (s *GrantStore) GetByUserCode(ctx context.Context, userCode string) (*provision.Grant, error) {
	if userCode == "" {
		return nil, provision.ErrGrantNotFound
	}
	return s.get(ctx, `user_code = $1`, userCode)
}

// Update implements provision.GrantStore.
func (s *GrantStore) Update(ctx context.Context, g provision.Grant) error {
	data, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("sqlstore: encode grant: %w", err)
	}
	res, err := s.c.db.ExecContext(ctx, s.c.q(
		`UPDATE {grants} SET data = $1, expires_at = $2, version = version + 1
		 WHERE grant_key = $3 AND version = $4 AND user_code IS NOT DISTINCT FROM $5`),
		string(data), g.ExpiresAt.UnixNano(), g.Key, g.Version, nullable(g.UserCode))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return provision.ErrGrantConflict
	}
	return nil
}

// Delete implements provision.GrantStore.
func (s *GrantStore) Delete(ctx context.Context, key string) (bool, error) {
	res, err := s.c.db.ExecContext(ctx, s.c.q(`DELETE FROM {grants} WHERE grant_key = $1`), key)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

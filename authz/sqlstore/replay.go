package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"time"

	"github.com/agentprov/agentprov/authz"
)

// ReplayStore is an authz.ReplayStore in a SQL table. An id is recorded with
// one statement that inserts it, or takes over its row when the recorded
// expiry has passed, and otherwise changes nothing; the affected-row count
// says which happened. Call DeleteExpired now and then to keep the table
// small; correctness does not depend on it.
//
// A ReplayStore is safe for concurrent use, also across processes.
type ReplayStore struct {
	c conn
}

var _ authz.ReplayStore = (*ReplayStore)(nil)

// NewReplayStore returns a ReplayStore on db. Run Migrate before first use.
func NewReplayStore(db *sql.DB, dialect Dialect, opts *Options) (*ReplayStore, error) {
	c, err := newConn(db, dialect, opts)
	if err != nil {
		return nil, err
	}
	return &ReplayStore{c: c}, nil
}

// Migrate creates the replay table and its expiry index if absent.
func (s *ReplayStore) Migrate(ctx context.Context) error {
	return s.c.migrate(ctx,
		`CREATE TABLE IF NOT EXISTS {replay} (
			id TEXT PRIMARY KEY,
			expires_at BIGINT NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS {replay_expires_at} ON {replay} (expires_at)`,
	)
}

// maxStoredID is the longest id stored as is; longer ids are stored as a
// SHA-256 digest, keeping index entries small (PostgreSQL b-tree entries
// are limited to about 2.7 KB).
const maxStoredID = 255

func storedID(id string) string {
	if len(id) <= maxStoredID {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PutIfAbsent implements authz.ReplayStore. Times are stored as Unix
// nanoseconds.
func (s *ReplayStore) PutIfAbsent(ctx context.Context, id string, expiresAt time.Time) (bool, error) {
	res, err := s.c.db.ExecContext(ctx, s.c.q(
		`INSERT INTO {replay} (id, expires_at) VALUES ($1, $2)
		 ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at
		 WHERE {replay}.expires_at <= $3`),
		storedID(id), expiresAt.UnixNano(), s.c.now.Now().UnixNano())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// DeleteExpired removes ids whose expiry has passed and reports how many.
func (s *ReplayStore) DeleteExpired(ctx context.Context) (int64, error) {
	res, err := s.c.db.ExecContext(ctx, s.c.q(`DELETE FROM {replay} WHERE expires_at <= $1`), s.c.now.Now().UnixNano())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

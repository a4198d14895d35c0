package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/vault"
)

// VaultStore is a vault.VaultStore in a SQL table: one row per credential
// with its opaque data and a version. Writes are single statements —
// an UPSERT for Put, a conditional INSERT or UPDATE for CompareAndSwap — so
// concurrent writers never lose an update. Wrap it in an
// vault.EncryptedVaultStore so that the database holds only ciphertext.
//
// A VaultStore is safe for concurrent use, also across processes.
type VaultStore struct {
	c conn
}

var _ vault.VaultStore = (*VaultStore)(nil)

// NewVaultStore returns a VaultStore on db. Run Migrate before first use.
func NewVaultStore(db *sql.DB, dialect Dialect, opts *Options) (*VaultStore, error) {
	c, err := newConn(db, dialect, opts)
	if err != nil {
		return nil, err
	}
	return &VaultStore{c: c}, nil
}

// Migrate creates the vault table if absent.
func (s *VaultStore) Migrate(ctx context.Context) error {
	return s.c.migrate(ctx, `CREATE TABLE IF NOT EXISTS {vault} (
		project TEXT NOT NULL,
		provider TEXT NOT NULL,
		service TEXT NOT NULL,
		data `+s.c.blobType()+` NOT NULL,
		version BIGINT NOT NULL,
		updated_at BIGINT NOT NULL,
		PRIMARY KEY (project, provider, service)
	)`)
}

func notFound(key vault.VaultKey) error {
	return &authz.Error{Code: vault.ErrCredentialNotFound.Code, Status: vault.ErrCredentialNotFound.Status, Detail: "no credential " + key.String()}
}

func conflict(key vault.VaultKey, why string) error {
	return &authz.Error{Code: vault.ErrVersionConflict.Code, Status: vault.ErrVersionConflict.Status, Detail: "credential " + key.String() + " " + why}
}

// Get implements vault.VaultStore.
func (s *VaultStore) Get(ctx context.Context, key vault.VaultKey) (vault.VaultRecord, error) {
	rec := vault.VaultRecord{Key: key}
	err := s.c.db.QueryRowContext(ctx, s.c.q(
		`SELECT data, version FROM {vault} WHERE project = $1 AND provider = $2 AND service = $3`),
		key.Project, key.Provider, key.Service).Scan(&rec.Data, &rec.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return vault.VaultRecord{}, notFound(key)
	}
	if err != nil {
		return vault.VaultRecord{}, err
	}
	return rec, nil
}

// Put implements vault.VaultStore.
func (s *VaultStore) Put(ctx context.Context, key vault.VaultKey, data []byte) (int64, error) {
	var v int64
	err := s.c.db.QueryRowContext(ctx, s.c.q(
		`INSERT INTO {vault} (project, provider, service, data, version, updated_at)
		 VALUES ($1, $2, $3, $4, 1, $5)
		 ON CONFLICT (project, provider, service) DO UPDATE
		 SET data = excluded.data, version = {vault}.version + 1, updated_at = excluded.updated_at
		 RETURNING version`),
		key.Project, key.Provider, key.Service, nonNil(data), s.c.now.Now().UnixNano()).Scan(&v)
	return v, err
}

// CompareAndSwap implements vault.VaultStore.
func (s *VaultStore) CompareAndSwap(ctx context.Context, key vault.VaultKey, version int64, data []byte) (int64, error) {
	if version < 0 {
		return 0, conflict(key, "negative version")
	}
	now := s.c.now.Now().UnixNano()
	var v int64
	var err error
	if version == 0 {
		err = s.c.db.QueryRowContext(ctx, s.c.q(
			`INSERT INTO {vault} (project, provider, service, data, version, updated_at)
			 VALUES ($1, $2, $3, $4, 1, $5)
			 ON CONFLICT (project, provider, service) DO NOTHING
			 RETURNING version`),
			key.Project, key.Provider, key.Service, nonNil(data), now).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, conflict(key, "already exists")
		}
		return v, err
	}
	err = s.c.db.QueryRowContext(ctx, s.c.q(
		`UPDATE {vault} SET data = $4, version = version + 1, updated_at = $5
		 WHERE project = $1 AND provider = $2 AND service = $3 AND version = $6
		 RETURNING version`),
		key.Project, key.Provider, key.Service, nonNil(data), now, version).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		// The write did not happen; this read only classifies the failure.
		var one int
		e := s.c.db.QueryRowContext(ctx, s.c.q(
			`SELECT 1 FROM {vault} WHERE project = $1 AND provider = $2 AND service = $3`),
			key.Project, key.Provider, key.Service).Scan(&one)
		if errors.Is(e, sql.ErrNoRows) {
			return 0, notFound(key)
		}
		if e != nil {
			return 0, e
		}
		return 0, conflict(key, "changed since it was read")
	}
	return v, err
}

// Delete implements vault.VaultStore.
func (s *VaultStore) Delete(ctx context.Context, key vault.VaultKey) error {
	res, err := s.c.db.ExecContext(ctx, s.c.q(
		`DELETE FROM {vault} WHERE project = $1 AND provider = $2 AND service = $3`),
		key.Project, key.Provider, key.Service)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound(key)
	}
	return nil
}

// List implements vault.VaultStore. Rows are ordered in Go, by bytes, so the
// order does not depend on the database's collation.
func (s *VaultStore) List(ctx context.Context, project, provider string) ([]vault.VaultRecord, error) {
	var rows *sql.Rows
	var err error
	if provider == "" {
		rows, err = s.c.db.QueryContext(ctx, s.c.q(
			`SELECT provider, service, data, version FROM {vault} WHERE project = $1`), project)
	} else {
		rows, err = s.c.db.QueryContext(ctx, s.c.q(
			`SELECT provider, service, data, version FROM {vault} WHERE project = $1 AND provider = $2`), project, provider)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []vault.VaultRecord
	for rows.Next() {
		r := vault.VaultRecord{Key: vault.VaultKey{Project: project}}
		if err := rows.Scan(&r.Key.Provider, &r.Key.Service, &r.Data, &r.Version); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b vault.VaultRecord) int {
		return cmp.Or(cmp.Compare(a.Key.Provider, b.Key.Provider), cmp.Compare(a.Key.Service, b.Key.Service))
	})
	return out, nil
}

// nonNil keeps an empty payload from being stored as SQL NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

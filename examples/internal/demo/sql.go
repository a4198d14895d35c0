package demo

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	authzsql "github.com/agentprov/agentprov/authz/sqlstore"
	budgetsql "github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqldb"
	paymentsql "github.com/agentprov/agentprov/payment/sqlstore"
)

// OrchestratorSQL fills the stores of cfg from one SQLite database (the
// caller registered the "sqlite" driver and opened db with
// sqldb.OpenSQLite). Tables are created if absent, so every process
// sharing the file may call it.
func OrchestratorSQL(ctx context.Context, db *sql.DB, cfg *OrchestratorConfig) error {
	vault, err := authzsql.NewVaultStore(db, sqldb.SQLite, nil)
	if err != nil {
		return err
	}
	if err := vault.Migrate(ctx); err != nil {
		return err
	}
	ledger, err := budgetsql.New(ctx, db, sqldb.SQLite, nil)
	if err != nil {
		return err
	}
	pay, err := paymentsql.New(ctx, db, sqldb.SQLite, nil)
	if err != nil {
		return err
	}
	res, err := NewSQLResources(ctx, db)
	if err != nil {
		return err
	}
	cfg.VaultStore, cfg.Budget, cfg.Redemptions, cfg.Idempotency, cfg.Resources = vault, ledger, pay, pay, res
	return nil
}

// ProviderSQL fills the account, token and replay stores of cfg from one
// SQLite database.
func ProviderSQL(ctx context.Context, db *sql.DB, cfg *ProviderConfig) error {
	accounts, err := authzsql.NewAccountStore(db, sqldb.SQLite, nil)
	if err != nil {
		return err
	}
	tokens, err := authzsql.NewTokenStore(db, sqldb.SQLite, nil)
	if err != nil {
		return err
	}
	replay, err := authzsql.NewReplayStore(db, sqldb.SQLite, nil)
	if err != nil {
		return err
	}
	for _, m := range []interface{ Migrate(context.Context) error }{accounts, tokens, replay} {
		if err := m.Migrate(ctx); err != nil {
			return err
		}
	}
	res, err := NewSQLProviderResources(ctx, db)
	if err != nil {
		return err
	}
	cfg.Accounts, cfg.Tokens, cfg.Replay, cfg.Resources = accounts, tokens, replay, res
	return nil
}

// SQLProviderResources is a ProviderResources in one table. Safe for
// concurrent use, also across processes.
type SQLProviderResources struct{ db *sql.DB }

// NewSQLProviderResources creates the table if absent.
func NewSQLProviderResources(ctx context.Context, db *sql.DB) (*SQLProviderResources, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS demo_provider_resources (
		id TEXT PRIMARY KEY, account_id TEXT NOT NULL, created_at TEXT NOT NULL, doc TEXT NOT NULL)`)
	if err != nil {
		return nil, fmt.Errorf("demo: provider resources: %w", err)
	}
	return &SQLProviderResources{db: db}, nil
}

// Put records a resource the provider created, replacing one with the same id.
func (s *SQLProviderResources) Put(ctx context.Context, res Resource) error {
	doc, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO demo_provider_resources (id, account_id, created_at, doc) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`,
		res.ID, res.AccountID, res.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000000Z"), string(doc))
	return err
}

// ByAccount returns the resources of one account, oldest first.
func (s *SQLProviderResources) ByAccount(ctx context.Context, accountID string) ([]Resource, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT doc FROM demo_provider_resources WHERE account_id = ?1 ORDER BY created_at, id`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Resource{}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var r Resource
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SQLResources is a ResourceStore in one table; every operation is one
// statement. Safe for concurrent use, also across processes: a name is
// reserved by a put-if-absent on the table's primary key.
type SQLResources struct{ db *sql.DB }

// resourceColumns are the reservation columns, added to tables made
// before them.
var resourceColumns = []struct{ name, def string }{
	{"state", "TEXT NOT NULL DEFAULT 'active'"},
	{"fingerprint", "TEXT NOT NULL DEFAULT ''"},
	{"idem_key", "TEXT NOT NULL DEFAULT ''"},
	{"owner", "TEXT NOT NULL DEFAULT ''"},
	{"lease_until", "INTEGER NOT NULL DEFAULT 0"},
}

// NewSQLResources creates the table if absent, and the reservation
// columns a table made by an earlier version lacks.
func NewSQLResources(ctx context.Context, db *sql.DB) (*SQLResources, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS demo_resources (
		project TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL, doc TEXT NOT NULL,
		state TEXT NOT NULL DEFAULT 'active', fingerprint TEXT NOT NULL DEFAULT '', idem_key TEXT NOT NULL DEFAULT '',
		owner TEXT NOT NULL DEFAULT '', lease_until INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (project, name))`)
	if err != nil {
		return nil, fmt.Errorf("demo: resources: %w", err)
	}
	for _, col := range resourceColumns {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('demo_resources') WHERE name = ?1`, col.name).Scan(&n); err != nil {
			return nil, fmt.Errorf("demo: resources: %w", err)
		}
		if n > 0 {
			continue
		}
		// Another process may add it at the same time: a duplicate is fine.
		if _, err := db.ExecContext(ctx, `ALTER TABLE demo_resources ADD COLUMN `+col.name+` `+col.def); err != nil &&
			!strings.Contains(err.Error(), "duplicate column") {
			return nil, fmt.Errorf("demo: resources: %w", err)
		}
	}
	return &SQLResources{db: db}, nil
}

const sqlTime = "2006-01-02T15:04:05.000000000Z"

// Put stores res, replacing any resource of the same project and name;
// a pending reservation of the name is complete.
func (s *SQLResources) Put(ctx context.Context, res Resource) error {
	doc, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO demo_resources (project, name, created_at, doc) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (project, name) DO UPDATE SET doc = excluded.doc, state = 'active', owner = '', lease_until = 0`,
		res.Project, res.Name, res.CreatedAt.UTC().Format(sqlTime), string(doc))
	return err
}

// Claim reserves c.Name; see ResourceStore. The reservation is one
// INSERT … ON CONFLICT DO NOTHING; a takeover one conditional UPDATE.
func (s *SQLResources) Claim(ctx context.Context, c Claim) (*Claimed, error) {
	rec := claimRecord(c)
	doc, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	for range 3 {
		r, err := s.db.ExecContext(ctx, `INSERT INTO demo_resources (project, name, created_at, doc, state, fingerprint, idem_key, owner, lease_until)
			VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8) ON CONFLICT (project, name) DO NOTHING`,
			c.Project, c.Name, rec.CreatedAt.Format(sqlTime), string(doc), c.Fingerprint, c.Key, c.Owner, c.Until.UnixNano())
		if err != nil {
			return nil, fmt.Errorf("demo: reserve %q: %w", c.Name, err)
		}
		if n, err := r.RowsAffected(); err != nil {
			return nil, err
		} else if n == 1 {
			return &Claimed{Key: c.Key, Fresh: true}, nil
		}
		var key string
		err = s.db.QueryRowContext(ctx, `UPDATE demo_resources SET owner = ?3, lease_until = ?4
			WHERE project = ?1 AND name = ?2 AND state = 'pending' AND fingerprint = ?5 AND lease_until <= ?6
			RETURNING idem_key`, c.Project, c.Name, c.Owner, c.Until.UnixNano(), c.Fingerprint, c.Now.UnixNano()).Scan(&key)
		if err == nil {
			return &Claimed{Key: key}, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("demo: reserve %q: %w", c.Name, err)
		}
		// Why not: read the holder, for the error only.
		var state, fp, held string
		var until int64
		err = s.db.QueryRowContext(ctx, `SELECT state, fingerprint, doc, lease_until FROM demo_resources WHERE project = ?1 AND name = ?2`,
			c.Project, c.Name).Scan(&state, &fp, &held, &until)
		if errors.Is(err, sql.ErrNoRows) {
			continue // abandoned meanwhile: try again
		}
		if err != nil {
			return nil, err
		}
		var holder Resource
		_ = json.Unmarshal([]byte(held), &holder)
		ce := &NameConflictError{Project: c.Project, Name: c.Name, Service: holder.Service, State: state}
		if state == StatusPending {
			ce.SameRequest = fp == c.Fingerprint
			if left := time.Unix(0, until).Sub(c.Now); left > 0 {
				ce.InFlight, ce.RetryAfter = true, left
			}
		}
		return nil, ce
	}
	return nil, fmt.Errorf("demo: reserve %q: contended", c.Name)
}

// Renew extends owner's lease of a pending name.
func (s *SQLResources) Renew(ctx context.Context, project, name, owner string, until time.Time) error {
	r, err := s.db.ExecContext(ctx, `UPDATE demo_resources SET lease_until = ?4
		WHERE project = ?1 AND name = ?2 AND state = 'pending' AND owner = ?3`, project, name, owner, until.UnixNano())
	if err != nil {
		return err
	}
	if n, err := r.RowsAffected(); err != nil || n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// Release ends owner's lease; the name stays pending with its key.
func (s *SQLResources) Release(ctx context.Context, project, name, owner string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE demo_resources SET owner = '', lease_until = 0
		WHERE project = ?1 AND name = ?2 AND state = 'pending' AND owner = ?3`, project, name, owner)
	return err
}

// Abandon deletes owner's pending reservation.
func (s *SQLResources) Abandon(ctx context.Context, project, name, owner string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM demo_resources
		WHERE project = ?1 AND name = ?2 AND state = 'pending' AND owner = ?3`, project, name, owner)
	return err
}

// Get returns the named resource, or an error matching ErrNotFound.
func (s *SQLResources) Get(ctx context.Context, project, name string) (*Resource, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, `SELECT doc FROM demo_resources WHERE project = ?1 AND name = ?2`, project, name).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: resource %q", ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	var r Resource
	return &r, json.Unmarshal([]byte(doc), &r)
}

// List returns the project's resources, oldest first.
func (s *SQLResources) List(ctx context.Context, project string) ([]Resource, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT doc FROM demo_resources WHERE project = ?1 ORDER BY created_at, name`, project)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Resource
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var r Resource
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Delete removes the named resource; deleting a missing one is not an error.
func (s *SQLResources) Delete(ctx context.Context, project, name string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM demo_resources WHERE project = ?1 AND name = ?2`, project, name)
	return err
}

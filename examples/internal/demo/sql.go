package demo

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

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
// statement. Safe for concurrent use, also across processes.
type SQLResources struct{ db *sql.DB }

// NewSQLResources creates the table if absent.
func NewSQLResources(ctx context.Context, db *sql.DB) (*SQLResources, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS demo_resources (
		project TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL, doc TEXT NOT NULL,
		PRIMARY KEY (project, name))`)
	if err != nil {
		return nil, fmt.Errorf("demo: resources: %w", err)
	}
	return &SQLResources{db: db}, nil
}

// Put stores res, replacing any resource of the same project and name.
func (s *SQLResources) Put(ctx context.Context, res Resource) error {
	doc, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO demo_resources (project, name, created_at, doc) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (project, name) DO UPDATE SET doc = excluded.doc`,
		res.Project, res.Name, res.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000000Z"), string(doc))
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

// Package sqlstore implements the authz stores over database/sql for SQLite
// (3.35 or later) and PostgreSQL (13 or later).
//
// Each store has its own constructor taking a *sql.DB, a Dialect and
// Options, and a Migrate method that creates its tables if they are absent
// (idempotent, safe to run at every start and from several instances). The
// package imports no driver: bring your own, e.g. modernc.org/sqlite
// ("sqlite") or github.com/jackc/pgx/v5/stdlib ("pgx").
//
//	db, _ := sql.Open("pgx", dsn)
//	replay, _ := sqlstore.NewReplayStore(db, sqlstore.Postgres, nil)
//	if err := replay.Migrate(ctx); err != nil { … }
//
// # Roles
//
// Provider side: replay, account, token and grant stores shared by every
// instance of a provider. Orchestrator side: the vault store (wrap it in
// vault.NewEncryptedVaultStore).
//
// # Stores
//
// ReplayStore implements authz.ReplayStore with one INSERT … ON CONFLICT
// statement that also takes over expired ids; VaultStore implements
// vault.VaultStore with versioned rows and conditional UPDATEs. Wrap the
// VaultStore in vault.EncryptedVaultStore so that only ciphertext reaches
// the database. AccountStore (create-if-absent on a unique key, linking by
// conditional UPDATE), TokenStore (hashes only) and GrantStore (codes of
// linking flows in progress) serve the provider side. Every store passes the
// authztest conformance suites.
//
// # Concurrency
//
// All stores are safe for concurrent use, from one process or many sharing
// a database: every operation is a single atomic statement.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/sqldb"
)

// Dialect names the SQL flavour of the database.
type Dialect = sqldb.Dialect

// Supported dialects.
const (
	SQLite   = sqldb.SQLite
	Postgres = sqldb.Postgres
)

// DefaultTablePrefix prefixes the tables of this package.
const DefaultTablePrefix = "agentprov_authz_"

// Options tune a store. The zero value is safe.
type Options struct {
	// TablePrefix is prepended to table names; default "agentprov_authz_".
	// It must be a plain SQL identifier prefix: letters, digits and '_'.
	TablePrefix string
	// Clock reads the time; default time.Now.
	Clock func() time.Time
}

// conn is the plumbing every store of the package shares.
type conn struct {
	db      *sql.DB
	dialect Dialect
	prefix  string
	now     clock.Func
}

func newConn(db *sql.DB, d Dialect, opts *Options) (conn, error) {
	if db == nil {
		return conn{}, errors.New("sqlstore: db is required")
	}
	if !d.Valid() {
		return conn{}, fmt.Errorf("sqlstore: unknown dialect %v", d)
	}
	if opts == nil {
		opts = &Options{}
	}
	p := opts.TablePrefix
	if p == "" {
		p = DefaultTablePrefix
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return conn{}, fmt.Errorf("sqlstore: table prefix %q may hold only letters, digits and '_'", p)
		}
	}
	return conn{db: db, dialect: d, prefix: p, now: clock.Func(opts.Clock)}, nil
}

// q prepares a query written with PostgreSQL placeholders and "{table}"
// markers: markers get the prefix, placeholders the dialect's form.
func (c conn) q(query string) string {
	return c.dialect.Rebind(c.expand(query))
}

func (c conn) expand(query string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(query, '{')
		if i < 0 {
			b.WriteString(query)
			return b.String()
		}
		j := strings.IndexByte(query[i:], '}')
		if j < 0 {
			b.WriteString(query)
			return b.String()
		}
		b.WriteString(query[:i])
		b.WriteString(c.prefix)
		b.WriteString(query[i+1 : i+j])
		query = query[i+j+1:]
	}
}

// blobType is the column type of opaque bytes.
func (c conn) blobType() string {
	if c.dialect == Postgres {
		return "BYTEA"
	}
	return "BLOB"
}

// migrate runs idempotent DDL statements (CREATE … IF NOT EXISTS) in order.
func (c conn) migrate(ctx context.Context, stmts ...string) error {
	for _, s := range stmts {
		if _, err := c.db.ExecContext(ctx, c.q(s)); err != nil {
			return fmt.Errorf("sqlstore: migrate: %w", err)
		}
	}
	return nil
}

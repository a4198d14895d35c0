package sqlstore

import "github.com/agentprov/agentprov/internal/sqldb"

// Dialect names the SQL flavour of the database handed to New. It is an
// alias of the internal plumbing's type so that callers never import
// internal packages.
type Dialect = sqldb.Dialect

// The supported dialects.
const (
	// SQLite is SQLite 3.35 or later (for example modernc.org/sqlite),
	// opened with one connection, WAL and synchronous=FULL.
	SQLite = sqldb.SQLite
	// Postgres is PostgreSQL 13 or later (for example through
	// github.com/jackc/pgx/v5/stdlib) at READ COMMITTED isolation.
	Postgres = sqldb.Postgres
)

// Package sqldb is the SQL plumbing shared by the database/sql stores:
// dialects, placeholder rewriting and opening SQLite with safe settings.
// Drivers are never imported here; callers bring them.
package sqldb

import (
	"database/sql"
	"fmt"
	"net/url"
	"strings"
)

// Dialect names the SQL flavour a store speaks.
type Dialect int

const (
	// SQLite is SQLite 3.35 or later (RETURNING, UPSERT), e.g. modernc.org/sqlite.
	SQLite Dialect = iota + 1
	// Postgres is PostgreSQL 13 or later, e.g. through github.com/jackc/pgx/v5/stdlib.
	// The SQL is kept CockroachDB-compatible where that costs nothing.
	Postgres
)

// String is the dialect's lower-case name, as used in test names.
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// Valid reports whether d is a known dialect.
func (d Dialect) Valid() bool { return d == SQLite || d == Postgres }

// Rebind rewrites a query written with PostgreSQL placeholders ($1, $2, …)
// for d. SQLite gets its numbered form (?1, ?2, …), which also allows reuse.
// Queries must not contain '$' inside string literals.
func (d Dialect) Rebind(q string) string {
	if d != SQLite {
		return q
	}
	var b strings.Builder
	b.Grow(len(q))
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c == '$' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9' {
			b.WriteByte('?')
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// SQLiteDSN returns a modernc.org/sqlite data source name for the file at
// path with WAL journaling, a busy timeout, foreign keys and immediate
// transactions (so that a read-then-write transaction never deadlocks on the
// lock upgrade). Durability is kept: synchronous=FULL.
func SQLiteDSN(path string) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Add("_pragma", "foreign_keys(ON)")
	v.Set("_txlock", "immediate")
	return "file:" + path + "?" + v.Encode()
}

// OpenSQLite opens path with SQLiteDSN through the "sqlite" driver, which the
// caller must have registered (import _ "modernc.org/sqlite"). SQLite allows
// one writer at a time, so the pool is limited to one connection: writers
// queue in Go rather than spinning on SQLITE_BUSY.
func OpenSQLite(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

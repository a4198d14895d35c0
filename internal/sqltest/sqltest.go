// Package sqltest opens throwaway SQLite and PostgreSQL databases for tests.
//
// PostgreSQL tests run only when AGENTPROV_TEST_POSTGRES holds a connection
// URL (CI sets postgres://postgres@127.0.0.1:5432/test?sslmode=disable);
// otherwise they skip with a message saying so. Each call gets its own
// schema, dropped at cleanup, so parallel tests and packages never collide.
package sqltest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/agentprov/agentprov/internal/sqldb"
)

// EnvPostgres names the variable holding the PostgreSQL test URL.
const EnvPostgres = "AGENTPROV_TEST_POSTGRES"

// SQLitePath returns a fresh database file path inside t.TempDir().
func SQLitePath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "agentprov.db")
}

// SQLite opens (creating if needed) the SQLite database at path and closes
// it at cleanup. Open the same path again to test durability across reopen.
func SQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sqldb.OpenSQLite(path)
	if err != nil {
		t.Fatalf("sqltest: open sqlite %s: %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PostgresBase returns the configured PostgreSQL URL, skipping t when unset.
func PostgresBase(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		t.Skipf("sqltest: %s is not set; skipping PostgreSQL test (CI sets it to postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", EnvPostgres)
	}
	return base
}

// PostgresSchema creates a fresh schema and returns a URL whose connections
// use it as their search_path. The schema is dropped at cleanup. The URL can
// be handed to other processes.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresBase(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("sqltest: open postgres: %v", err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("sqltest: postgres at %s unreachable or unusable: %v", base, err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("sqltest: bad %s: %v", EnvPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Postgres opens a connection pool on a fresh schema (see PostgresSchema)
// and closes it at cleanup.
func Postgres(t testing.TB) *sql.DB {
	t.Helper()
	return OpenPostgres(t, PostgresSchema(t))
}

// OpenPostgres opens another pool on dsn (as returned by PostgresSchema),
// closed at cleanup: a second orchestrator instance sharing one database.
func OpenPostgres(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("sqltest: open postgres: %v", err)
	}
	// A bounded pool, as in production: concurrency tests with a hundred
	// goroutines queue in database/sql instead of exhausting the server's
	// max_connections, which parallel test binaries share.
	db.SetMaxOpenConns(MaxPostgresConns)
	if err := db.Ping(); err != nil {
		db.Close()
		t.Fatalf("sqltest: ping postgres: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// MaxPostgresConns bounds each pool OpenPostgres returns.
const MaxPostgresConns = 8

package sqltest_test

import (
	"testing"

	"github.com/agentprov/agentprov/internal/sqldb"
	"github.com/agentprov/agentprov/internal/sqltest"
)

func TestSQLiteReopen(t *testing.T) {
	path := sqltest.SQLitePath(t)
	db := sqltest.SQLite(t, path)
	if _, err := db.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(sqldb.SQLite.Rebind(`INSERT INTO kv (k, v) VALUES ($1, $2)`), "a", 7); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db2 := sqltest.SQLite(t, path)
	var v int
	if err := db2.QueryRow(sqldb.SQLite.Rebind(`SELECT v FROM kv WHERE k = $1`), "a").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 7 {
		t.Fatalf("v = %d after reopen, want 7", v)
	}
}

func TestPostgresSchemaIsolation(t *testing.T) {
	a := sqltest.Postgres(t)
	b := sqltest.Postgres(t)
	if _, err := a.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(`CREATE TABLE kv (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatalf("second schema should not see the first's table: %v", err)
	}
	var one int
	if err := a.QueryRow(`SELECT $1::int`, 1).Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT: %v %d", err, one)
	}
}

func TestRebind(t *testing.T) {
	got := sqldb.SQLite.Rebind(`UPDATE t SET a = $1 WHERE b = $12 AND c = $1`)
	want := `UPDATE t SET a = ?1 WHERE b = ?12 AND c = ?1`
	if got != want {
		t.Fatalf("Rebind = %q, want %q", got, want)
	}
	if q := sqldb.Postgres.Rebind(`$1`); q != `$1` {
		t.Fatalf("postgres Rebind changed %q", q)
	}
}

// Pools are bounded so that concurrency tests in parallel binaries do not
// exhaust the shared server's max_connections.
func TestOpenPostgresBoundsPool(t *testing.T) {
	db := sqltest.Postgres(t)
	if got := db.Stats().MaxOpenConnections; got != sqltest.MaxPostgresConns {
		t.Fatalf("MaxOpenConnections = %d, want %d", got, sqltest.MaxPostgresConns)
	}
}

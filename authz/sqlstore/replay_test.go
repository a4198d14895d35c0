package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/authztest"
	"github.com/agentprov/agentprov/authz/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// opener returns, for one fresh database, a function that opens a new
// connection pool on it: calling it twice is a process restart.
type opener func(t *testing.T) (open func() *sql.DB, dialect sqlstore.Dialect)

var dialects = map[string]opener{
	"SQLite": func(t *testing.T) (func() *sql.DB, sqlstore.Dialect) {
		path := sqltest.SQLitePath(t)
		return func() *sql.DB { return sqltest.SQLite(t, path) }, sqlstore.SQLite
	},
	"Postgres": func(t *testing.T) (func() *sql.DB, sqlstore.Dialect) {
		dsn := sqltest.PostgresSchema(t)
		return func() *sql.DB { return sqltest.OpenPostgres(t, dsn) }, sqlstore.Postgres
	},
}

func newReplay(ctx context.Context, t *testing.T, db *sql.DB, d sqlstore.Dialect) (*sqlstore.ReplayStore, error) {
	return migrated(ctx, sqlstore.NewReplayStore, db, d)
}

func TestReplayStore(t *testing.T) {
	for name, op := range dialects {
		t.Run(name, func(t *testing.T) {
			authztest.RunReplayStore(t, func(ctx context.Context, t *testing.T) (*authztest.ReplayHarness, error) {
				open, d := op(t)
				s, err := newReplay(ctx, t, open(), d)
				if err != nil {
					return nil, err
				}
				return &authztest.ReplayHarness{
					Store:  s,
					Reopen: func(ctx context.Context) (authz.ReplayStore, error) { return newReplay(ctx, t, open(), d) },
				}, nil
			})
		})
	}
}

func TestReplayStoreDeleteExpired(t *testing.T) {
	for name, op := range dialects {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			open, d := op(t)
			s, err := newReplay(ctx, t, open(), d)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			for i, exp := range []time.Time{now.Add(-time.Hour), now.Add(-time.Second), now.Add(time.Hour)} {
				if ok, err := s.PutIfAbsent(ctx, string(rune('a'+i)), exp); err != nil || !ok {
					t.Fatalf("PutIfAbsent: %v %v", ok, err)
				}
			}
			n, err := s.DeleteExpired(ctx)
			if err != nil || n != 2 {
				t.Fatalf("DeleteExpired = %d, %v; want 2", n, err)
			}
			if ok, _ := s.PutIfAbsent(ctx, "c", now.Add(time.Hour)); ok {
				t.Fatal("live id deleted")
			}
		})
	}
}

func TestNewStoresValidate(t *testing.T) {
	db := sqltest.SQLite(t, sqltest.SQLitePath(t))
	if _, err := sqlstore.NewReplayStore(nil, sqlstore.SQLite, nil); err == nil {
		t.Error("nil db accepted")
	}
	if _, err := sqlstore.NewVaultStore(db, sqlstore.Dialect(0), nil); err == nil {
		t.Error("unknown dialect accepted")
	}
	if _, err := sqlstore.NewVaultStore(db, sqlstore.SQLite, &sqlstore.Options{TablePrefix: "x; DROP TABLE y"}); err == nil {
		t.Error("unsafe table prefix accepted")
	}
}

func ExampleReplayStore() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "replay")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// Any database/sql driver; here modernc.org/sqlite, registered as "sqlite".
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "provider.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	replay, err := sqlstore.NewReplayStore(db, sqlstore.SQLite, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := replay.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	exp := time.Now().Add(5 * time.Minute)
	first, _ := replay.PutIfAbsent(ctx, "jti-1", exp)
	again, _ := replay.PutIfAbsent(ctx, "jti-1", exp)
	fmt.Println(first, again)
	// Output: true false
}

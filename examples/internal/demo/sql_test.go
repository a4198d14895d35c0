package demo

import (
	"context"
	"errors"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// The SQL resource stores keep what they were given across a reopen.
func TestSQLResourcesDurable(t *testing.T) {
	ctx := context.Background()
	path := sqltest.SQLitePath(t)
	db := sqltest.SQLite(t, path)
	orch, err := NewSQLResources(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	prov, err := NewSQLProviderResources(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	charged := budget.USD(700)
	for i, name := range []string{"vm", "db"} {
		r := Resource{ID: "res_" + name, Service: "cloud/compute:small", Name: name, Project: "p", AccountID: "a",
			Status: "active", Charged: &charged, CreatedAt: at.Add(time.Duration(i) * time.Minute)}
		if err := orch.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := prov.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := orch.Delete(ctx, "p", "db"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = sqltest.SQLite(t, path)
	orch, _ = NewSQLResources(ctx, db)
	prov, _ = NewSQLProviderResources(ctx, db)
	list, err := orch.List(ctx, "p")
	if err != nil || len(list) != 1 || list[0].Name != "vm" || list[0].Charged.Amount != 700 {
		t.Fatalf("orchestrator list: %+v %v", list, err)
	}
	if _, err := orch.Get(ctx, "p", "db"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted resource: %v", err)
	}
	byAcct, err := prov.ByAccount(ctx, "a")
	if err != nil || len(byAcct) != 2 || byAcct[0].ID != "res_vm" {
		t.Fatalf("provider list: %+v %v", byAcct, err)
	}
	if other, _ := prov.ByAccount(ctx, "b"); len(other) != 0 {
		t.Fatalf("another account sees %+v", other)
	}
}

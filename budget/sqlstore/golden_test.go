package sqlstore

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden SQL files in testdata")

// The statements are the contract with the database: these golden files
// make every change to them visible in review (go test -run Golden -update
// rewrites them). They are also what Appendix B of the protocol describes.
func TestGoldenSQL(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		s := &Store{dialect: d, t: newTables("agentprov_")}
		s.q = buildQueries(d, s.t)
		var b strings.Builder
		section := func(name, sql string) {
			b.WriteString("-- " + name + "\n" + strings.TrimSpace(sql) + ";\n\n")
		}
		for i, stmt := range s.schema() {
			section("schema "+string(rune('a'+i)), stmt)
		}
		section("usage (2 counters)", s.usageQuery(2))
		section("windows", s.q.windows)
		section("mark alert", s.q.markAlert)
		if d == SQLite {
			section("add to held (2 counters)", s.sqliteCounterUpsert(2, "held"))
			section("link hold to counters (2 counters)", s.sqliteLinks(2))
		}
		if d == Postgres {
			section("reserve (6 counters)", s.reserveStatement(6))
			for _, k := range []string{"commit", "release", "reverse", "expire"} {
				section(k, s.transitionStatement(k))
			}
			section("reclaim expired holds", s.reclaimStatement())
			section("apply usage (2 counters)", s.usageStatement(2))
		}
		path := filepath.Join("testdata", d.String()+".sql")
		got := b.String()
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run Golden -update)", err)
		}
		if got != string(want) {
			t.Errorf("%s statements differ from %s; review and rerun with -update", d, path)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	for p, want := range map[string]bool{
		"": true, "agentprov_": true, "a": true, "_x9": true, "a_b_c_": true,
		"A": false, "9a": false, "a-b": false, "a.b": false, "a b": false, `a"`: false,
		strings.Repeat("a", 32): true, strings.Repeat("a", 33): false,
	} {
		if got := validPrefix(p); got != want {
			t.Errorf("validPrefix(%q) = %v; want %v", p, got, want)
		}
	}
}

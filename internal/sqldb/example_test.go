package sqldb_test

import (
	"fmt"

	"github.com/agentprov/agentprov/internal/sqldb"
)

// Queries are written once, with PostgreSQL placeholders, and rebound for
// SQLite.
func ExampleDialect_Rebind() {
	q := `UPDATE holds SET state = $1 WHERE id = $2 AND state = $3`
	fmt.Println(sqldb.Postgres.Rebind(q))
	fmt.Println(sqldb.SQLite.Rebind(q))
	// Output:
	// UPDATE holds SET state = $1 WHERE id = $2 AND state = $3
	// UPDATE holds SET state = ?1 WHERE id = ?2 AND state = ?3
}

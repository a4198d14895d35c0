// Command pgping exits non-zero unless the PostgreSQL server at the URL given
// as its argument answers. CI uses it so that PostgreSQL tests never pass by
// skipping.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pgping postgres://…")
		os.Exit(2)
	}
	db, err := sql.Open("pgx", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgping:", err)
		os.Exit(1)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		fmt.Fprintln(os.Stderr, "pgping: PostgreSQL unreachable:", err)
		os.Exit(1)
	}
	fmt.Println("pgping: ok")
}

// Command orchestrator is an example orchestrator CLI built on agentprov,
// with the commands agents know from Stripe Projects. Its state lives in
// SQLite under a project directory (.agentprov/ in the working directory,
// or --dir): keys (mode 0600), the encrypted credential vault, the budget
// ledger, payment records and the resources added.
//
//	orchestrator init --email ada@example.com --provider http://127.0.0.1:8081
//	orchestrator serve &                       # JWKS + redemption endpoint for providers
//	orchestrator catalog compute
//	orchestrator add cloud/compute:small --accept-terms --confirm-paid
//	orchestrator env --json
//
// Run "orchestrator help" for every command, flag and exit code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	_ "modernc.org/sqlite" // the driver lives in the program, never in the library
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

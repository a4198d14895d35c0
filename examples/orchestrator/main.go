// Command orchestrator is an example orchestrator CLI built on agentprov.
package main

import (
	"context"
	"io"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := &output{stdout: stdout, stderr: stderr}
	return o.failure(fail(exitUsage, "usage", "not implemented yet"))
}

package main

import (
	"strings"
	"testing"
)

// TestHelpForEveryCommand: "help CMD", "CMD --help" and "CMD -h" print that
// command's usage and the global flags, exit 0, for every command; an
// unknown command's help is a usage error.
func TestHelpForEveryCommand(t *testing.T) {
	for _, cmd := range []string{"init", "catalog", "add", "provider", "status", "env", "billing", "spend", "rotate", "remove", "gc", "revoke", "serve", "help"} {
		for _, args := range [][]string{{"help", cmd}, {cmd, "--help"}, {cmd, "-h"}} {
			code, _, out := cliRun(t, "", args...)
			if code != exitOK || !strings.Contains(out, "Usage: orchestrator "+cmd) || !strings.Contains(out, "Global flags:") {
				t.Errorf("%v: exit %d\n%s", args, code, out)
			}
		}
	}
	if code, env, _ := cliRun(t, "", "help", "nope", "--json"); code != exitUsage || env.Error == nil || env.Error.Code != "usage" {
		t.Errorf("help nope: exit %d %+v", code, env)
	}
}

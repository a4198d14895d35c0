package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseUSD(t *testing.T) {
	for in, want := range map[string]int64{"50": 5000, "50.5": 5050, "0.25": 25, "$7": 700, "100.00": 10000} {
		got, err := parseUSD(in)
		if err != nil || got != want {
			t.Errorf("parseUSD(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "1.234", "-5", "1e3", ".5", "5.-1"} {
		if got, err := parseUSD(in); err == nil {
			t.Errorf("parseUSD(%q) = %d, want an error", in, got)
		}
	}
}

func cliRun(t *testing.T, stdin string, args ...string) (int, envelope, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runWith(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	var env envelope
	if strings.Contains(strings.Join(args, " "), "--json") {
		if err := json.Unmarshal(out.Bytes(), &env); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
	}
	return code, env, out.String() + errb.String()
}

func TestExitCodes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	if code, env, _ := cliRun(t, "", "status", "--dir", dir, "--json"); code != exitNotInit || env.OK || env.Error.Code != "project_not_initialized" {
		t.Errorf("status: %d %+v", code, env)
	}
	if code, env, _ := cliRun(t, "", "frobnicate", "--dir", dir, "--json"); code != exitUsage || env.Error.Code != "usage" {
		t.Errorf("unknown command: %d %+v", code, env)
	}
	if code, _, _ := cliRun(t, ""); code != exitUsage {
		t.Errorf("no command: %d", code)
	}
	if code, _, out := cliRun(t, "", "help"); code != exitOK || !strings.Contains(out, "4  needs the human") {
		t.Errorf("help: %d\n%s", code, out)
	}
	if code, env, _ := cliRun(t, "", "init", "--dir", dir, "--json"); code != exitUsage || env.OK {
		t.Errorf("init without email: %d %+v", code, env)
	}
	if code, env, _ := cliRun(t, "", "init", "--dir", dir, "--email", "ada@example.com", "--provider", "ftp://x", "--json"); code != exitUsage {
		t.Errorf("init with a bad provider URL: %d %+v", code, env)
	}
	// A project without providers still initializes and then refuses a
	// cap change from a non-interactive caller.
	if code, env, _ := cliRun(t, "", "init", "--dir", dir, "--email", "ada@example.com", "--json"); code != exitOK || !env.OK {
		t.Fatalf("init: %d %+v", code, env)
	}
	if code, env, _ := cliRun(t, "", "init", "--dir", dir, "--email", "ada@example.com", "--json"); code != exitError || env.Error.Code != "already_initialized" {
		t.Errorf("second init: %d %+v", code, env)
	}
	if code, env, _ := cliRun(t, "", "billing", "update", "--limit", "20", "--dir", dir, "--json"); code != exitNeedsHuman || env.Error.Code != "human_required" {
		t.Errorf("billing update: %d %+v", code, env)
	}
	if code, env, _ := cliRun(t, "", "billing", "update", "--limit", "20", "--human", "--dir", dir, "--json"); code != exitOK || !env.OK {
		t.Errorf("billing update --human: %d %+v", code, env)
	}
	// A human at the prompt decides; silence is not consent.
	for stdin, want := range map[string]int{"y\n": exitOK, "n\n": exitUnauthorized, "": exitNeedsHuman} {
		if code, _, out := cliRun(t, stdin, "billing", "update", "--limit", "30", "--interactive", "--dir", dir); code != want {
			t.Errorf("prompt answered %q: exit %d, want %d\n%s", stdin, code, want, out)
		}
	}
	if code, env, _ := cliRun(t, "", "rotate", "nothing", "--dir", dir, "--json"); code != exitNotFound || env.Error.Code != "not_found" {
		t.Errorf("rotate unknown: %d %+v", code, env)
	}
}

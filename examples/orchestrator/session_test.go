package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSession builds the CLI and the provider server, runs them as
// separate processes and drives a whole session through the --json
// envelope: init → catalog → add → env → spend → revoke, each command a
// new process reading the state the previous ones left in SQLite.
func TestSession(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bin := t.TempDir()
	for _, pkg := range []string{"orchestrator", "provider"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, pkg), "../"+pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	orchAddr := freeAddr(t)
	issuer := "http://" + orchAddr
	const key = "rk_session_test_key_0123456789"

	// The provider: its own process, its own SQLite state.
	prov := exec.CommandContext(ctx, filepath.Join(bin, "provider"), "-addr", "127.0.0.1:0", "-data", t.TempDir(),
		"-profile", "cloud", "-orchestrator", issuer, "-redemption-key", key)
	provURL := startAndRead(t, prov, "listening on ")

	dir := filepath.Join(t.TempDir(), ".agentprov")
	cli := func(wantExit int, args ...string) map[string]any {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "orchestrator"), append(args, "--dir", dir, "--json")...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var env map[string]any
		if jerr := json.Unmarshal(stdout.Bytes(), &env); jerr != nil {
			t.Fatalf("%v: stdout is not one JSON envelope: %v\n%s\nstderr:\n%s", args, jerr, stdout.String(), stderr.String())
		}
		if code != wantExit {
			t.Fatalf("%v: exit %d, want %d\n%s\nstderr:\n%s", args, code, wantExit, stdout.String(), stderr.String())
		}
		if ok, _ := env["ok"].(bool); ok != (wantExit == 0) {
			t.Fatalf("%v: ok=%v with exit %d", args, env["ok"], code)
		}
		return env
	}
	data := func(env map[string]any) map[string]any { return env["data"].(map[string]any) }
	errCode := func(env map[string]any) string { return env["error"].(map[string]any)["code"].(string) }

	// Before init there is no project.
	if c := errCode(cli(exitNotInit, "status")); c != "project_not_initialized" {
		t.Fatalf("code %q", c)
	}
	init := data(cli(exitOK, "init", "--email", "ada@example.com", "--issuer", issuer,
		"--provider", provURL, "--redemption-key", "cloud="+key))
	project := init["project"].(string)
	if fi, err := os.Stat(filepath.Join(dir, "orchestrator.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}

	// The orchestrator's public endpoints, sharing the SQLite state.
	serve := exec.CommandContext(ctx, filepath.Join(bin, "orchestrator"), "serve", "--dir", dir)
	startAndRead(t, serve, "orchestrator listening on ")

	cat := data(cli(exitOK, "catalog", "compute"))
	if s := cat["services"].([]any); len(s) != 2 {
		t.Fatalf("catalog: %v", s)
	}
	// Non-interactive: no paid service and no terms without the human's flags.
	if c := errCode(cli(exitNeedsHuman, "add", "cloud/compute:small")); c != "paid_service_confirmation_required" {
		t.Fatalf("code %q", c)
	}
	if c := errCode(cli(exitNeedsHuman, "add", "cloud/compute:small", "--confirm-paid")); c != "terms_acceptance_required" {
		t.Fatalf("code %q", c)
	}
	add := data(cli(exitOK, "add", "cloud/compute:small", "--confirm-paid", "--accept-terms", "--name", "vm"))
	res := add["resource"].(map[string]any)
	if res["name"] != "vm" || res["status"] != "active" || res["charged"].(map[string]any)["amount"].(float64) != 700 {
		t.Fatalf("add: %v", add)
	}
	if add["connection"].(map[string]any)["link_action"] != "created" {
		t.Fatalf("connection: %v", add["connection"])
	}
	// A metered service: its activation is free, but still a paid service.
	cli(exitOK, "add", "cloud/api:inference", "--confirm-paid")

	env := data(cli(exitOK, "env"))
	vars := env["vars"].(map[string]any)
	if vars["CLOUD_API_TOKEN"] != "[REDACTED]" || vars["CLOUD_API_URL"] != "[REDACTED]" {
		t.Fatalf("env: %v", vars)
	}
	revealed := data(cli(exitOK, "env", "--reveal"))["vars"].(map[string]any)
	token, _ := revealed["CLOUD_API_TOKEN"].(string)
	if !strings.HasPrefix(token, "apt_") || revealed["CLOUD_API_URL"] != provURL+"/v1" {
		t.Fatalf("revealed env: %v", revealed)
	}

	spend := data(cli(exitOK, "spend"))
	if total := spend["total"].(map[string]any)["amount"].(float64); total != 700 {
		t.Fatalf("spend: %v", spend)
	}
	// Only the human changes caps.
	if c := errCode(cli(exitNeedsHuman, "billing", "update", "--limit", "50", "--provider", "cloud")); c != "human_required" {
		t.Fatalf("code %q", c)
	}
	cli(exitOK, "billing", "update", "--limit", "5", "--provider", "cloud", "--human")
	if c := errCode(cli(exitPayment, "add", "cloud/compute:small", "--confirm-paid", "--name", "vm2")); c != "cap_exceeded" {
		t.Fatalf("code %q", c)
	}

	status := data(cli(exitOK, "status"))
	if status["project"] != project || len(status["resources"].([]any)) != 2 || len(status["credentials"].([]any)) != 2 {
		t.Fatalf("status: %v", status)
	}

	rev := data(cli(exitOK, "revoke"))
	results := rev["results"].([]any)
	if len(results) != 2 {
		t.Fatalf("revoke: %v", rev)
	}
	for _, r := range results {
		if r.(map[string]any)["revoked"] != true {
			t.Fatalf("revoke: %v", rev)
		}
	}
	// The provider no longer honours the token; the vault is empty.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, provURL+"/v1/resources", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked token: HTTP %d", resp.StatusCode)
	}
	if vars := data(cli(exitOK, "env"))["vars"].(map[string]any); len(vars) != 0 {
		t.Fatalf("env after revoke: %v", vars)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startAndRead starts cmd and returns what follows marker on its first
// line of output (stdout or stderr) containing it. The process is
// interrupted when the test ends.
func startAndRead(t *testing.T, cmd *exec.Cmd, marker string) string {
	t.Helper()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		pw.Close()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if _, after, ok := strings.Cut(line, marker); ok && !sent {
				found <- strings.TrimSpace(after)
				sent = true
			}
			if testing.Verbose() {
				fmt.Fprintln(os.Stderr, filepath.Base(cmd.Path)+": "+line)
			}
		}
	}()
	select {
	case v := <-found:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not print %q", cmd.Path, marker)
	}
	return ""
}

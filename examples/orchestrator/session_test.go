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
	"sync"
	"testing"
	"time"

	"github.com/agentprov/agentprov/examples/internal/demo"
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
	const regKey, cloudKey = "rk_session_registrar_0123456789", "rk_session_cloud_0123456789"

	// Two providers, each its own process with its own SQLite state. Ada
	// has had a Cloud account for years; the registrar has never seen her.
	registrar := exec.CommandContext(ctx, filepath.Join(bin, "provider"), "-addr", "127.0.0.1:0", "-data", t.TempDir(),
		"-profile", "registrar", "-orchestrator", issuer, "-redemption-key", regKey)
	regURL := startAndRead(t, registrar, "listening on ")
	cloud := exec.CommandContext(ctx, filepath.Join(bin, "provider"), "-addr", "127.0.0.1:0", "-data", t.TempDir(),
		"-profile", "cloud", "-orchestrator", issuer, "-redemption-key", cloudKey,
		"-seed-account", "ada@example.com", "-demo-login", "-device-interval", "1s")
	provURL := startAndRead(t, cloud, "listening on ")

	dir := filepath.Join(t.TempDir(), ".agentprov")
	command := func(args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, filepath.Join(bin, "orchestrator"), append(args, "--dir", dir, "--json")...)
	}
	check := func(args []string, wantExit int, err error, stdout, stderr *bytes.Buffer) map[string]any {
		t.Helper()
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
	cli := func(wantExit int, args ...string) map[string]any {
		t.Helper()
		cmd := command(args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return check(args, wantExit, cmd.Run(), &stdout, &stderr)
	}
	data := func(env map[string]any) map[string]any { return env["data"].(map[string]any) }
	errCode := func(env map[string]any) string { return env["error"].(map[string]any)["code"].(string) }
	charged := func(add map[string]any) float64 {
		c, _ := add["resource"].(map[string]any)["charged"].(map[string]any)
		if c == nil {
			return 0
		}
		return c["amount"].(float64)
	}
	linkAction := func(add map[string]any) any { return add["connection"].(map[string]any)["link_action"] }

	// Before init there is no project.
	if c := errCode(cli(exitNotInit, "status")); c != "project_not_initialized" {
		t.Fatalf("code %q", c)
	}
	init := data(cli(exitOK, "init", "--email", "ada@example.com", "--issuer", issuer,
		"--provider", regURL, "--provider", provURL,
		"--redemption-key", "registrar="+regKey, "--redemption-key", "cloud="+cloudKey))
	project := init["project"].(string)
	if fi, err := os.Stat(filepath.Join(dir, "orchestrator.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}

	// The orchestrator's public endpoints, sharing the SQLite state.
	serve := exec.CommandContext(ctx, filepath.Join(bin, "orchestrator"), "serve", "--dir", dir)
	startAndRead(t, serve, "orchestrator listening on ")

	if s := data(cli(exitOK, "catalog"))["services"].([]any); len(s) != 3 {
		t.Fatalf("catalog: %v", s)
	}
	if s := data(cli(exitOK, "catalog", "@compute"))["services"].([]any); len(s) != 2 {
		t.Fatalf("catalog @compute: %v", s)
	}

	// A new account at the registrar. Non-interactive: no paid service and
	// no terms without the human's flags.
	domain := []string{"add", "registrar/registrar:domain", "--config", `{"domain":"ada-builds.dev"}`, "--name", "site"}
	if c := errCode(cli(exitNeedsHuman, domain...)); c != "paid_service_confirmation_required" {
		t.Fatalf("code %q", c)
	}
	if c := errCode(cli(exitNeedsHuman, append(domain, "--confirm-paid")...)); c != "terms_acceptance_required" {
		t.Fatalf("code %q", c)
	}
	if c := errCode(cli(exitUsage, "add", "registrar/registrar:domain", "--config", `{"domain":"no spaces.dev"}`, "--confirm-paid", "--accept-terms")); c != "invalid_config" {
		t.Fatalf("code %q", c)
	}
	add := data(cli(exitOK, append(domain, "--confirm-paid", "--accept-terms")...))
	if linkAction(add) != "created" || charged(add) != 1299 {
		t.Fatalf("add domain: %v", add)
	}

	// Ada's existing Cloud account: the provider asks for the holder's
	// approval, which she gives on Cloud's own page while the CLI waits.
	args := []string{"add", "cloud/compute:small", "--confirm-paid", "--name", "vm"}
	cmd := command(args...)
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	cmd.Stdout = &stdout
	codeSeen := make(chan string, 1)
	cmd.Stderr = &markerWriter{w: stderr, marker: "enter the code ", found: codeSeen}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var userCode string
	select {
	case userCode = <-codeSeen:
	case <-time.After(30 * time.Second):
		t.Fatalf("no device code shown; stderr:\n%s", stderr.String())
	}
	if err := demo.ApproveByForm(ctx, provURL, userCode, "ada@example.com"); err != nil {
		t.Fatalf("approval page: %v", err)
	}
	add = data(check(args, exitOK, cmd.Wait(), &stdout, &stderr.buf))
	if linkAction(add) != "linked_existing" || charged(add) != 700 {
		t.Fatalf("add compute: %v", add)
	}
	// The link is made once: the next Cloud service needs no approval. A
	// metered service is still a paid service to confirm.
	if c := errCode(cli(exitNeedsHuman, "add", "cloud/api:inference")); c != "paid_service_confirmation_required" {
		t.Fatalf("code %q", c)
	}
	add = data(cli(exitOK, "add", "cloud/api:inference", "--confirm-paid"))
	if linkAction(add) != "linked_existing" || charged(add) != 0 {
		t.Fatalf("add inference: %v", add)
	}

	env := data(cli(exitOK, "env"))
	vars := env["vars"].(map[string]any)
	// Two Cloud services, two tokens: neither hides the other.
	if len(vars) != 6 || vars["COMPUTE_SMALL_CLOUD_API_TOKEN"] != "[REDACTED]" || vars["API_INFERENCE_CLOUD_API_TOKEN"] != "[REDACTED]" ||
		vars["REGISTRAR_API_TOKEN"] != "[REDACTED]" || vars["REGISTRAR_DOMAIN"] != "[REDACTED]" {
		t.Fatalf("env: %v", vars)
	}
	revealedEnv := data(cli(exitOK, "env", "--reveal", "--provider", "cloud"))
	revealed := revealedEnv["vars"].(map[string]any)
	compute := revealedEnv["services"].(map[string]any)["cloud/compute:small"].(map[string]any)
	token, _ := compute["CLOUD_API_TOKEN"].(string)
	if !strings.HasPrefix(token, "apt_") || revealed["COMPUTE_SMALL_CLOUD_API_TOKEN"] != token ||
		revealed["CLOUD_API_URL"] != provURL+"/v1" || revealed["REGISTRAR_DOMAIN"] != nil {
		t.Fatalf("revealed env: %v", revealedEnv)
	}

	spend := data(cli(exitOK, "spend"))
	if total := spend["total"].(map[string]any)["amount"].(float64); total != 1299+700 {
		t.Fatalf("spend: %v", spend)
	}
	// Only the human changes caps; then the lower cap holds.
	if c := errCode(cli(exitNeedsHuman, "billing", "update", "--limit", "50", "--provider", "cloud")); c != "human_required" {
		t.Fatalf("code %q", c)
	}
	cli(exitOK, "billing", "update", "--limit", "10", "--provider", "cloud", "--human")
	if c := errCode(cli(exitPayment, "add", "cloud/compute:small", "--confirm-paid", "--name", "vm2")); c != "cap_exceeded" {
		t.Fatalf("code %q", c)
	}
	// A cap below what was spent this month is refused, per provider and
	// project-wide (12.99 USD went to the registrar, 19.99 USD in all).
	if c := errCode(cli(exitUsage, "billing", "update", "--limit", "5", "--provider", "registrar", "--human")); c != "cap_below_spent" {
		t.Fatalf("cap below spent: code %q", c)
	}
	if c := errCode(cli(exitUsage, "billing", "update", "--limit", "15", "--human")); c != "cap_below_spent" {
		t.Fatalf("project cap below spent: code %q", c)
	}
	show := data(cli(exitOK, "billing", "show"))
	if p := show["project"].(map[string]any); p["committed"].(float64) != 1299+700 || p["provider"] != "" {
		t.Fatalf("billing show: project-wide row %v", p)
	}
	caps := show["caps"].([]any)
	for _, c := range caps {
		c := c.(map[string]any)
		if c["provider"] == "cloud" && c["limit"].(map[string]any)["amount"].(float64) != 1000 {
			t.Fatalf("billing show: %v", caps)
		}
	}

	status := data(cli(exitOK, "status"))
	if status["project"] != project || status["serving"] != true || len(status["resources"].([]any)) != 3 || len(status["credentials"].([]any)) != 3 {
		t.Fatalf("status: %v", status)
	}

	// Removing the only resource of a service revokes its credential at
	// the provider and drops it from the vault.
	if removed := data(cli(exitOK, "remove", "vm")); removed["resource"].(map[string]any)["name"] != "vm" {
		t.Fatalf("remove: %v", removed)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, provURL+"/v1/resources", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("removed resource's token: HTTP %d, want 401", resp.StatusCode)
	}
	status = data(cli(exitOK, "status"))
	if len(status["resources"].([]any)) != 2 || len(status["credentials"].([]any)) != 2 {
		t.Fatalf("status after remove: %v", status)
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
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, provURL+"/v1/resources", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
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

// lockedBuffer is a bytes.Buffer written by a process's copier goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// markerWriter copies to w and reports the word following marker once.
type markerWriter struct {
	w      *lockedBuffer
	marker string
	found  chan string
	sent   bool
}

func (m *markerWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if !m.sent {
		if _, after, ok := strings.Cut(m.w.String(), m.marker); ok {
			if f := strings.Fields(after); len(f) > 0 {
				m.found <- f[0]
				m.sent = true
			}
		}
	}
	return n, err
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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/agentprov/agentprov/examples/internal/demo"
)

// cliEnv, set in a re-executed test binary's environment, makes it run
// the CLI with its arguments instead of the tests.
const cliEnv = "AGENTPROV_TEST_ORCHESTRATOR_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// countingResources is the provider's resource store, counting creates.
type countingResources struct {
	mu   sync.Mutex
	m    map[string]demo.Resource
	puts int
}

func (s *countingResources) Put(_ context.Context, res demo.Resource) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[res.ID]; !ok {
		s.puts++
	}
	s.m[res.ID] = res
	return nil
}

func (s *countingResources) ByAccount(_ context.Context, accountID string) ([]demo.Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []demo.Resource{}
	for _, r := range s.m {
		if r.AccountID == accountID {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *countingResources) created() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts
}

// registrarProject is one project whose orchestrator serves in-process,
// with the registrar provider in-process behind wrap (nil: as is), and a
// CLI run as separate processes of this test binary.
type registrarProject struct {
	t         *testing.T
	dir       string
	issuer    string
	resources *countingResources

	serveMu     sync.Mutex
	stopServing func()
}

func newRegistrarProject(t *testing.T, wrap func(http.Handler) http.Handler) *registrarProject {
	t.Helper()
	const key = "rk_concurrent_registrar_0123456789"
	orchAddr := freeAddr(t)
	issuer := "http://" + orchAddr
	p := &registrarProject{t: t, dir: filepath.Join(t.TempDir(), ".agentprov"), resources: &countingResources{m: map[string]demo.Resource{}}}
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	prov, err := demo.NewProvider(demo.ProviderConfig{Profile: demo.Registrar(), BaseURL: srv.URL,
		OrchestratorIssuer: issuer, RedemptionKey: key, Resources: p.resources})
	if err != nil {
		t.Fatal(err)
	}
	h = prov.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	if code, env, out := cliRun(t, "", "init", "--dir", p.dir, "--email", "ada@example.com", "--issuer", issuer,
		"--provider", "registrar="+srv.URL, "--redemption-key", "registrar="+key, "--json"); code != exitOK {
		t.Fatalf("init: %d %+v\n%s", code, env, out)
	}
	p.issuer = issuer
	p.startServe()
	t.Cleanup(p.stopServe)
	return p
}

// startServe runs "orchestrator serve" for the project in this process
// and waits until it answers.
func (p *registrarProject) startServe() {
	p.t.Helper()
	p.serveMu.Lock()
	defer p.serveMu.Unlock()
	if p.stopServing != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan int, 1)
	go func() {
		var out bytes.Buffer
		served <- runWith(ctx, []string{"serve", "--dir", p.dir, "--quiet"}, bytes.NewReader(nil), &out, &out)
	}()
	p.stopServing = func() { cancel(); <-served }
	for i := 0; ; i++ {
		resp, err := http.Get(p.issuer + demo.JWKSPath)
		if err == nil {
			resp.Body.Close()
			return
		}
		if i > 100 {
			p.t.Fatalf("orchestrator serve did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopServe stops "orchestrator serve"; its endpoints are gone when it
// returns.
func (p *registrarProject) stopServe() {
	p.serveMu.Lock()
	defer p.serveMu.Unlock()
	if p.stopServing != nil {
		p.stopServing()
		p.stopServing = nil
	}
}

// cliResult is one CLI process's exit code and envelope.
type cliResult struct {
	exit int
	env  envelope
	out  string
}

// cli runs the CLI as a process of this test binary with --json.
func (p *registrarProject) cli(ctx context.Context, args ...string) cliResult {
	cmd := exec.CommandContext(ctx, os.Args[0], append(args, "--dir", p.dir, "--json")...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{out: stdout.String() + stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.exit = ee.ExitCode()
	} else if err != nil {
		r.exit = -1
		r.out += err.Error()
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &r.env); jerr != nil {
		r.exit = -1
		r.out += "\nstdout is not an envelope: " + jerr.Error()
	}
	return r
}

// spent is the project's total charged this month, in cents.
func (p *registrarProject) spent(ctx context.Context) float64 {
	p.t.Helper()
	r := p.cli(ctx, "spend")
	if r.exit != exitOK {
		p.t.Fatalf("spend: %d\n%s", r.exit, r.out)
	}
	return r.env.Data.(map[string]any)["total"].(map[string]any)["amount"].(float64)
}

// resources is status's resource list, by name.
func (p *registrarProject) resourceStatus(ctx context.Context) map[string]string {
	p.t.Helper()
	r := p.cli(ctx, "status")
	if r.exit != exitOK {
		p.t.Fatalf("status: %d\n%s", r.exit, r.out)
	}
	out := map[string]string{}
	for _, x := range r.env.Data.(map[string]any)["resources"].([]any) {
		m := x.(map[string]any)
		out[m["name"].(string)] = m["status"].(string)
	}
	return out
}

var addSite = []string{"add", "registrar/registrar:domain", "--config", `{"domain":"ada-builds.dev"}`, "--name", "site",
	"--confirm-paid", "--accept-terms"}

// TestConcurrentAddOneName: N CLI processes add the same name at once to
// one project. Exactly one succeeds; the others fail with name_conflict
// before reaching the provider: one domain is bought, one charge made,
// one resource recorded.
func TestConcurrentAddOneName(t *testing.T) {
	if testing.Short() {
		t.Skip("runs CLI processes")
	}
	for _, n := range []int{2, 8, 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var provCalls atomic.Int32
			p := newRegistrarProject(t, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost && r.URL.Path == "/v1/services/registrar:domain" {
						provCalls.Add(1)
					}
					h.ServeHTTP(w, r)
				})
			})
			results := make([]cliResult, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i] = p.cli(ctx, addSite...)
				}()
			}
			close(start)
			wg.Wait()
			ok := 0
			for i, r := range results {
				switch {
				case r.exit == exitOK && r.env.OK:
					ok++
				case r.exit == exitError && r.env.Error != nil && r.env.Error.Code == "name_conflict":
				default:
					t.Errorf("process %d: exit %d, want 0 or a name_conflict\n%s", i, r.exit, r.out)
				}
			}
			if ok != 1 {
				t.Errorf("%d of %d processes succeeded, want exactly 1", ok, n)
			}
			if got := p.resources.created(); got != 1 {
				t.Errorf("the provider created %d resources, want 1", got)
			}
			if got := provCalls.Load(); got > 2 { // the winner's unpaid and paid requests
				t.Errorf("the provider's create endpoint was called %d times, want at most 2", got)
			}
			if got := p.spent(ctx); got != 1299 {
				t.Errorf("charged %v cents, want one charge of 1299", got)
			}
			if st := p.resourceStatus(ctx); len(st) != 1 || st["site"] != "active" {
				t.Errorf("status resources: %v", st)
			}
		})
	}
}

// TestAddRetryAfterFailure: the first add fails after its idempotency key
// is persisted — the provider answers 503 without doing anything, or it
// made and charged the domain and the answer was lost. The resource shows
// pending; the same add with another service is a name_conflict; the
// retry of the same add finishes it: one resource at the provider, one
// charge.
func TestAddRetryAfterFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs CLI processes")
	}
	for _, tc := range []struct {
		name        string
		runProvider bool // the first failing request reached the provider
	}{{"503 before the provider", false}, {"answer lost after the provider", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var failed atomic.Bool
			var keys sync.Map
			p := newRegistrarProject(t, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method != http.MethodPost || r.URL.Path != "/v1/services/registrar:domain" {
						h.ServeHTTP(w, r)
						return
					}
					keys.Store(r.Header.Get("Idempotency-Key"), true)
					if failed.Load() {
						h.ServeHTTP(w, r)
						return
					}
					if !tc.runProvider {
						failed.Store(true)
						http.Error(w, "unavailable", http.StatusServiceUnavailable)
						return
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					if rec.Code != http.StatusCreated {
						for k, v := range rec.Header() {
							w.Header()[k] = v
						}
						w.WriteHeader(rec.Code)
						_, _ = w.Write(rec.Body.Bytes())
						return
					}
					failed.Store(true)
					http.Error(w, "unavailable", http.StatusServiceUnavailable)
				})
			})
			first := p.cli(ctx, addSite...)
			if first.exit != exitProvider || first.env.Error == nil || first.env.Error.Code != "provider_error" {
				t.Fatalf("first add: exit %d, want %d provider_error\n%s", first.exit, exitProvider, first.out)
			}
			if st := p.resourceStatus(ctx); st["site"] != demo.StatusPending {
				t.Errorf("status after the failure: %v, want site pending", st)
			}
			other := p.cli(ctx, "add", "cloud/compute:small", "--name", "site", "--confirm-paid", "--accept-terms")
			if other.exit != exitError || other.env.Error == nil || other.env.Error.Code != "name_conflict" {
				t.Errorf("add of another service as site: exit %d\n%s", other.exit, other.out)
			}
			retry := p.cli(ctx, addSite...)
			if retry.exit != exitOK {
				t.Fatalf("retry: exit %d\n%s", retry.exit, retry.out)
			}
			nkeys := 0
			keys.Range(func(any, any) bool { nkeys++; return true })
			if nkeys != 1 {
				t.Errorf("the create calls carried %d idempotency keys, want 1", nkeys)
			}
			if got := p.resources.created(); got != 1 {
				t.Errorf("the provider created %d resources, want 1", got)
			}
			if got := p.spent(ctx); got != 1299 {
				t.Errorf("charged %v cents, want one charge of 1299", got)
			}
			if st := p.resourceStatus(ctx); len(st) != 1 || st["site"] != "active" {
				t.Errorf("status after the retry: %v", st)
			}
			// Done is done: the same add again is a conflict, not a second domain.
			again := p.cli(ctx, addSite...)
			if again.exit != exitError || again.env.Error == nil || again.env.Error.Code != "name_conflict" {
				t.Errorf("add after success: exit %d\n%s", again.exit, again.out)
			}
			if got := p.resources.created(); got != 1 {
				t.Errorf("the provider created %d resources, want 1", got)
			}
		})
	}
}

// TestAddRetryAfterKill: the CLI is killed (SIGKILL, no cleanup) while
// the provider is creating the domain, after it was made and charged.
// The resource shows pending; a retry while the dead process's lease
// runs is a name_conflict saying when to retry; the retry after it
// finishes the add with the stored key: one resource, one charge.
func TestAddRetryAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs CLI processes and waits for a lease")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	created := make(chan struct{})
	var hung atomic.Bool
	p := newRegistrarProject(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/v1/services/registrar:domain" {
				h.ServeHTTP(w, r)
				return
			}
			// The first answer that made the domain is never sent: the
			// CLI waits until it is killed.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code == http.StatusCreated && hung.CompareAndSwap(false, true) {
				close(created)
				<-r.Context().Done()
				return
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	})
	cmd := exec.CommandContext(ctx, os.Args[0], append(addSite, "--dir", p.dir, "--json")...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-created:
	case <-time.After(30 * time.Second):
		t.Fatal("the provider never created the domain")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if st := p.resourceStatus(ctx); st["site"] != demo.StatusPending {
		t.Errorf("status after the kill: %v, want site pending", st)
	}
	early := p.cli(ctx, addSite...)
	if early.exit != exitError || early.env.Error == nil || early.env.Error.Code != "name_conflict" {
		t.Fatalf("retry during the lease: exit %d\n%s", early.exit, early.out)
	}
	d, _ := early.env.Error.Details.(map[string]any)
	wait, _ := d["retry_after_seconds"].(float64)
	if d["in_flight"] != true || d["same_request"] != true || wait <= 0 || wait > demo.DefaultAddLease.Seconds() {
		t.Fatalf("retry during the lease: details %v", d)
	}
	time.Sleep(time.Duration(wait+1) * time.Second)
	retry := p.cli(ctx, addSite...)
	if retry.exit != exitOK {
		t.Fatalf("retry after the lease: exit %d\n%s", retry.exit, retry.out)
	}
	if got := p.resources.created(); got != 1 {
		t.Errorf("the provider created %d resources, want 1", got)
	}
	if got := p.spent(ctx); got != 1299 {
		t.Errorf("charged %v cents, want one charge of 1299", got)
	}
	if st := p.resourceStatus(ctx); len(st) != 1 || st["site"] != "active" {
		t.Errorf("status after the retry: %v", st)
	}
}

// TestAddWhileServeDown: "orchestrator serve" (the JWKS the provider
// verifies attestations with, and the redemption endpoint it is paid
// through) is down at each step of an add. Down before the add: the
// provider cannot verify the user, the add fails as provider_error, and
// nothing stays behind (no name held, nothing made, nothing charged). Down
// when the provider redeems the payment: the add fails with the name
// pending; once serve is back, the same add finishes under its stored key:
// one domain, one charge.
func TestAddWhileServeDown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs CLI processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stopAtPayment atomic.Bool
	var p *registrarProject
	p = newRegistrarProject(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			paid := slices.ContainsFunc(r.Header.Values("Authorization"), func(v string) bool { return strings.HasPrefix(v, "Payment ") })
			if r.Method == http.MethodPost && r.URL.Path == "/v1/services/registrar:domain" && paid && stopAtPayment.CompareAndSwap(true, false) {
				p.stopServe() // the redemption the provider is about to make finds no one
			}
			h.ServeHTTP(w, r)
		})
	})
	p.stopServe()
	down := p.cli(ctx, addSite...)
	if down.exit != exitProvider || down.env.Error == nil || down.env.Error.Code != "provider_error" {
		t.Fatalf("add with serve down: exit %d\n%s", down.exit, down.out)
	}
	if st := p.resourceStatus(ctx); len(st) != 0 {
		t.Errorf("status after a refused add: %v, want nothing", st)
	}
	p.startServe()
	// The provider never had the orchestrator's keys: it fetches them
	// again 1 s after its failed fetch (authz.KeySet's backoff), not 30 s.
	time.Sleep(1100 * time.Millisecond)
	if got := p.spent(ctx); got != 0 || p.resources.created() != 0 {
		t.Fatalf("after the refused add: spent %v, created %d", got, p.resources.created())
	}

	stopAtPayment.Store(true)
	mid := p.cli(ctx, addSite...)
	if mid.exit == exitOK {
		t.Fatalf("add with serve stopped at payment succeeded:\n%s", mid.out)
	}
	t.Logf("add with serve stopped at payment: exit %d\n%s", mid.exit, mid.out)
	if st := p.resourceStatus(ctx); st["site"] != demo.StatusPending {
		t.Errorf("status after serve stopped at payment: %v, want site pending (created %d)", st, p.resources.created())
	}
	p.startServe()
	retry := p.cli(ctx, addSite...)
	if retry.exit != exitOK {
		t.Fatalf("retry with serve back: exit %d\n%s", retry.exit, retry.out)
	}
	if got := p.resources.created(); got != 1 {
		t.Errorf("the provider created %d resources, want 1", got)
	}
	if got := p.spent(ctx); got != 1299 {
		t.Errorf("charged %v cents, want one charge of 1299", got)
	}
	if st := p.resourceStatus(ctx); len(st) != 1 || st["site"] != "active" {
		t.Errorf("status after the retry: %v", st)
	}
}

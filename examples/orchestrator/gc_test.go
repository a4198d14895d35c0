package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/agentprov/agentprov/examples/internal/demo"
)

// TestGCAfterKill: two adds of one project are killed (SIGKILL) while
// their creates are on the way: the provider made and charged "site"
// before its answer was lost, and never got "blog"'s create. status shows
// both pending; gc leaves them alone while the dead processes' leases
// run, then cleans both up: site's domain is removed at the provider
// (its charge stays: removing is no refund), blog had nothing to remove,
// both names are free again, and the registrar credential, used by no
// resource any more, is revoked and dropped.
func TestGCAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs CLI processes and waits for a lease")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	arrived := map[string]bool{}
	both := make(chan struct{})
	p := newRegistrarProject(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/v1/services/registrar:domain" {
				h.ServeHTTP(w, r)
				return
			}
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var req struct{ Name string }
			_ = json.Unmarshal(body, &req)
			mu.Lock()
			seen := arrived[req.Name]
			mu.Unlock()
			if seen { // after the kills: as is
				h.ServeHTTP(w, r)
				return
			}
			hang := false
			if req.Name == "blog" {
				hang = true // never reaches the provider
			} else {
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
				hang = true // made and charged; the answer is lost
			}
			if hang {
				mu.Lock()
				if !arrived[req.Name] {
					arrived[req.Name] = true
					if len(arrived) == 2 {
						close(both)
					}
				}
				mu.Unlock()
				<-r.Context().Done()
			}
		})
	})
	blog := []string{"add", "registrar/registrar:domain", "--config", `{"domain":"ada-writes.dev"}`, "--name", "blog",
		"--confirm-paid", "--accept-terms"}
	var cmds []*exec.Cmd
	for _, args := range [][]string{addSite, blog} {
		cmd := exec.CommandContext(ctx, os.Args[0], append(args, "--dir", p.dir, "--json")...)
		cmd.Env = append(os.Environ(), cliEnv+"=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	select {
	case <-both:
	case <-time.After(60 * time.Second):
		t.Fatal("the two creates never arrived")
	}
	for _, cmd := range cmds {
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
	if st := p.resourceStatus(ctx); st["site"] != demo.StatusPending || st["blog"] != demo.StatusPending {
		t.Fatalf("status after the kills: %v, want site and blog pending", st)
	}

	early := p.cli(ctx, "gc")
	if early.exit != exitOK {
		t.Fatalf("gc during the leases: exit %d\n%s", early.exit, early.out)
	}
	ed := early.env.Data.(map[string]any)
	busy, _ := ed["in_flight"].([]any)
	if done, _ := ed["discarded"].([]any); len(done) != 0 || len(busy) != 2 {
		t.Fatalf("gc during the leases: %v", ed)
	}
	wait := 0.0
	for _, b := range busy {
		wait = max(wait, b.(map[string]any)["retry_after_seconds"].(float64))
	}
	if wait <= 0 || wait > demo.DefaultAddLease.Seconds()+1 {
		t.Fatalf("gc during the leases: retry after %v s", wait)
	}
	if st := p.resourceStatus(ctx); len(st) != 2 {
		t.Fatalf("gc during the leases changed the state: %v", st)
	}
	time.Sleep(time.Duration(wait+1) * time.Second)

	gc := p.cli(ctx, "gc")
	if gc.exit != exitOK {
		t.Fatalf("gc: exit %d\n%s", gc.exit, gc.out)
	}
	got := map[string]map[string]any{}
	for _, d := range gc.env.Data.(map[string]any)["discarded"].([]any) {
		m := d.(map[string]any)
		got[m["name"].(string)] = m
	}
	if len(got) != 2 {
		t.Fatalf("gc discarded %v, want site and blog", got)
	}
	site, _ := got["site"]["at_provider"].(map[string]any)
	if site == nil || site["status"] != "removed" || site["charged"].(map[string]any)["amount"].(float64) != 1299 {
		t.Errorf("site at the provider: %v, want the charged domain, removed", got["site"])
	}
	if _, ok := got["blog"]["at_provider"]; ok {
		t.Errorf("blog at the provider: %v, want nothing", got["blog"])
	}
	p.resources.mu.Lock()
	for _, r := range p.resources.m {
		if r.Status != "removed" {
			t.Errorf("provider resource %s (%s) is %s after gc", r.ID, r.Name, r.Status)
		}
	}
	p.resources.mu.Unlock()
	if got := p.resources.created(); got != 1 {
		t.Errorf("the provider created %d resources, want 1", got)
	}
	if got := p.spent(ctx); got != 1299 {
		t.Errorf("spent %v cents, want the one charge of 1299", got)
	}
	st := p.cli(ctx, "status")
	sd := st.env.Data.(map[string]any)
	if rs := sd["resources"].([]any); len(rs) != 0 {
		t.Errorf("resources after gc: %v", rs)
	}
	if cs := sd["credentials"].([]any); len(cs) != 0 {
		t.Errorf("credentials after gc: %v, want the registrar's revoked and dropped", cs)
	}
	again := p.cli(ctx, "gc")
	if d, _ := again.env.Data.(map[string]any)["discarded"].([]any); again.exit != exitOK || len(d) != 0 {
		t.Errorf("second gc: exit %d\n%s", again.exit, again.out)
	}
	// The name is free: a new add of it succeeds (and is a new purchase).
	if r := p.cli(ctx, blog...); r.exit != exitOK {
		t.Errorf("add blog after gc: exit %d\n%s", r.exit, r.out)
	}
}

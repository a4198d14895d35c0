package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// TestInitRefusesCrossOriginRedirect: "init --provider URL" fetches with
// the library's safe fetcher, so a provider that redirects its metadata to
// another origin (the cloud metadata address, here another loopback port)
// is refused before that origin is contacted, and no project is written.
func TestInitRefusesCrossOriginRedirect(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer target.Close()
	for _, status := range []int{http.StatusFound, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/latest/meta-data/", status)
		}))
		dir := filepath.Join(t.TempDir(), "p")
		code, env, out := cliRun(t, "", "init", "--dir", dir, "--email", "ada@example.com", "--provider", redirector.URL, "--json")
		redirector.Close()
		if code == exitOK || env.OK {
			t.Errorf("%d redirect to another origin accepted: %d %+v\n%s", status, code, env, out)
		}
		if n := hits.Load(); n != 0 {
			t.Fatalf("%d redirect: the other origin was contacted %d times", status, n)
		}
		if code, env, _ := cliRun(t, "", "status", "--dir", dir, "--json"); code != exitNotInit || env.OK {
			t.Errorf("%d redirect: a failed init left a project behind: %d %+v", status, code, env)
		}
	}
}

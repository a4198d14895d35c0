package vault_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz/vault"
)

// bearerServer answers 200 with the path to requests carrying one of the
// accepted tokens and 401 to others, counting every request.
func bearerServer(t *testing.T, accepted ...string) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		for _, a := range accepted {
			if got == a {
				body, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "ok %s %s", r.URL.Path, body)
				return
			}
		}
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"invalid_token"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// vaultWith returns a vault holding one credential and a refresher that
// hands out "fresh-N" tokens, counting its calls.
func vaultWith(t *testing.T, c vault.Credential, now time.Time) (*vault.Vault, *atomic.Int64) {
	t.Helper()
	var refreshes atomic.Int64
	v, err := vault.NewVault(vault.NewMemoryVaultStore(), &vault.VaultOptions{
		Clock: func() time.Time { return now },
		Refresh: func(ctx context.Context, c vault.Credential) (vault.Credential, error) {
			n := refreshes.Add(1)
			time.Sleep(5 * time.Millisecond) // widen the race window
			c.AccessToken = vault.Secret(fmt.Sprintf("fresh-%d", n))
			c.Expiry = now.Add(time.Hour)
			return c, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Project, c.Provider, c.Service = "blog", "cloud", "compute"
	if err := v.Put(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return v, &refreshes
}

var transportNow = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestVaultTransportRefreshesExpiredTokenOnceUnderConcurrency(t *testing.T) {
	srv, _ := bearerServer(t, "fresh-1")
	v, refreshes := vaultWith(t, vault.Credential{
		AccessToken: "stale", RefreshToken: "r1", Expiry: transportNow.Add(-time.Minute),
	}, transportNow)
	client := &http.Client{Transport: &vault.VaultTransport{Vault: v, Project: "blog", Ref: "cloud/compute"}}

	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, body := get(t, client, srv.URL+"/vms"); code != 200 {
				t.Errorf("status %d: %s", code, body)
			}
		}()
	}
	wg.Wait()
	if n := refreshes.Load(); n != 1 {
		t.Errorf("refreshed %d times, want once", n)
	}
	c, err := v.Get(context.Background(), "blog", "cloud/compute")
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessToken.Reveal() != "fresh-1" || !c.Expiry.Equal(transportNow.Add(time.Hour)) {
		t.Errorf("stored credential not the refreshed one: %v %v", c.AccessToken.Reveal(), c.Expiry)
	}
}

func TestVaultTransportRefreshesOnceOn401AndReplaysBody(t *testing.T) {
	srv, hits := bearerServer(t, "fresh-1")
	// Not expired, but the provider revoked it.
	v, refreshes := vaultWith(t, vault.Credential{
		AccessToken: "revoked", RefreshToken: "r1", Expiry: transportNow.Add(time.Hour),
	}, transportNow)
	client := &http.Client{Transport: &vault.VaultTransport{Vault: v, Project: "blog", Ref: "cloud/compute"}}

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post(srv.URL+"/vms", "text/plain", strings.NewReader("body"))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "ok /vms body" {
				t.Errorf("status %d: %q", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	if n := refreshes.Load(); n != 1 {
		t.Errorf("refreshed %d times, want once", n)
	}
	if n := hits.Load(); n > 16 {
		t.Errorf("%d requests for 8 calls: more than one retry each", n)
	}
}

func TestVaultTransport401WithoutRefreshTokenIsReturned(t *testing.T) {
	srv, hits := bearerServer(t, "never")
	v, refreshes := vaultWith(t, vault.Credential{AccessToken: "api-key"}, transportNow)
	client := &http.Client{Transport: &vault.VaultTransport{Vault: v, Project: "blog", Ref: "cloud/compute"}}
	if code, _ := get(t, client, srv.URL+"/"); code != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", code)
	}
	if refreshes.Load() != 0 || hits.Load() != 1 {
		t.Errorf("refreshes %d, requests %d; want 0 and 1", refreshes.Load(), hits.Load())
	}
}

// A 401 that a refresh cannot cure (the fresh token is refused too) is
// retried once, not in a loop.
func TestVaultTransportRetriesAtMostOnce(t *testing.T) {
	srv, hits := bearerServer(t, "never")
	v, refreshes := vaultWith(t, vault.Credential{
		AccessToken: "revoked", RefreshToken: "r1", Expiry: transportNow.Add(time.Hour),
	}, transportNow)
	client := &http.Client{Transport: &vault.VaultTransport{Vault: v, Project: "blog", Ref: "cloud/compute"}}
	if code, _ := get(t, client, srv.URL+"/"); code != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", code)
	}
	if refreshes.Load() != 1 || hits.Load() != 2 {
		t.Errorf("refreshes %d, requests %d; want 1 and 2", refreshes.Load(), hits.Load())
	}
}

func TestVaultTransportLeavesCallersRequestUntouched(t *testing.T) {
	srv, _ := bearerServer(t, "tok")
	v, _ := vaultWith(t, vault.Credential{AccessToken: "tok"}, transportNow)
	tr := &vault.VaultTransport{Vault: v, Project: "blog", Ref: "cloud/compute"}
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Header.Set("X-Caller", "kept")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	if got := req.Header.Get("Authorization"); got != "" {
		t.Errorf("caller's request got Authorization %q", got)
	}
	if len(req.Header) != 1 || req.Header.Get("X-Caller") != "kept" {
		t.Errorf("caller's headers changed: %v", req.Header)
	}
}

type closeCounter struct {
	io.Reader
	closed atomic.Int64
}

func (c *closeCounter) Close() error { c.closed.Add(1); return nil }

func TestVaultTransportClosesBodyOnErrors(t *testing.T) {
	srv, hits := bearerServer(t, "tok")
	v, _ := vaultWith(t, vault.Credential{AccessToken: "tok"}, transportNow)
	cases := map[string]struct {
		tr  *vault.VaultTransport
		url string
		is  error
	}{
		"no credential": {&vault.VaultTransport{Vault: v, Project: "blog", Ref: "cloud/other"}, srv.URL, vault.ErrCredentialNotFound},
		"other origin":  {&vault.VaultTransport{Vault: v, Project: "blog", Ref: "cloud/compute", Origin: "https://api.cloud.example"}, srv.URL, vault.ErrOriginRefused},
		"cleartext":     {&vault.VaultTransport{Vault: v, Project: "blog", Ref: "cloud/compute"}, "http://api.cloud.example/", vault.ErrOriginRefused},
		"base fails":    {&vault.VaultTransport{Vault: v, Project: "blog", Ref: "cloud/compute", Base: failing{}}, srv.URL, errBase},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			body := &closeCounter{Reader: strings.NewReader("x")}
			req, _ := http.NewRequest("POST", tc.url, body)
			_, err := tc.tr.RoundTrip(req)
			if !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
			if body.closed.Load() == 0 {
				t.Error("request body not closed")
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the server", hits.Load())
	}
}

var errBase = errors.New("base failed")

type failing struct{}

func (failing) RoundTrip(*http.Request) (*http.Response, error) { return nil, errBase }

// A client whose transport adds the project's stored token: the request is
// built without credentials, and an expired token is refreshed and stored
// back on the way.
func ExampleVaultTransport() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "provider saw:", r.Header.Get("Authorization"))
	}))
	defer api.Close()

	ctx := context.Background()
	vlt, _ := vault.NewVault(vault.NewMemoryVaultStore(), &vault.VaultOptions{
		Refresh: func(ctx context.Context, c vault.Credential) (vault.Credential, error) {
			// Normally an OAuth refresh-token grant at the provider.
			c.AccessToken, c.Expiry = "renewed", time.Now().Add(time.Hour)
			return c, nil
		},
	})
	_ = vlt.Put(ctx, vault.Credential{
		Project: "blog", Provider: "cloud", Service: "compute",
		AccessToken: "old", RefreshToken: "r", Expiry: time.Now().Add(-time.Minute),
	})

	client := &http.Client{Transport: &vault.VaultTransport{
		Vault: vlt, Project: "blog", Ref: "cloud/compute", Origin: api.URL,
	}}
	resp, err := client.Get(api.URL + "/vms")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
	// Output: provider saw: Bearer renewed
}

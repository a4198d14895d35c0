package authz_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/safehttp"
)

func TestJWKSHandler(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	k2, _ := authz.GenerateSigningKey("k2", jose.ES256)
	if err := e.att.AddKey(k2); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.att.JWKSHandler())
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := safehttp.ReadAll(resp.Body, 1<<16)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != authz.JWKSMediaType {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Fatalf("Cache-Control %q", cc)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 2 {
		t.Fatalf("%d keys served, want 2", len(doc.Keys))
	}
	for _, k := range doc.Keys {
		if _, ok := k["d"]; ok {
			t.Fatalf("private key material served: %v", k)
		}
		if k["use"] != "sig" || k["kid"] == nil || k["alg"] == nil {
			t.Fatalf("key lacks use/kid/alg: %v", k)
		}
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional GET: %d, want 304", resp.StatusCode)
	}
	// Rotation changes the ETag.
	if err := e.att.SetActiveKey("k2"); err != nil {
		t.Fatal(err)
	}
	if err := e.att.RemoveKey("k1"); err != nil {
		t.Fatal(err)
	}
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
		t.Fatalf("after rotation: status %d, ETag %q (was %q)", resp.StatusCode, resp.Header.Get("ETag"), etag)
	}
	resp, _ = http.Post(srv.URL, "text/plain", strings.NewReader("x"))
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}

// countingJWKS serves h and counts requests.
type countingJWKS struct {
	h     http.Handler
	n     atomic.Int32
	gate  chan struct{} // when set, requests wait for it
	fail  atomic.Bool
	extra func(w http.ResponseWriter)
}

func (c *countingJWKS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	if c.fail.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if c.extra != nil {
		c.extra(w)
		return
	}
	c.h.ServeHTTP(w, r)
}

// TestKeySetRotation walks a full key rotation through a JWKS fetched over
// HTTP, counting fetches.
func TestKeySetRotation(t *testing.T) {
	clk := clock.NewFake(idT0)
	k1, _ := authz.GenerateSigningKey("k1", jose.EdDSA)
	att, err := authz.NewAttester(idIssuer, k1, &authz.AttesterOptions{Clock: clk.Now, JWKSMaxAge: time.Minute, Lifetime: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	jwks := &countingJWKS{h: att.JWKSHandler()}
	srv := httptest.NewServer(jwks)
	defer srv.Close()
	v, err := authz.NewVerifier(idAudience, []authz.TrustedIssuer{{Issuer: idIssuer, JWKSURL: srv.URL}},
		authz.NewMemoryReplayStore(&authz.MemoryReplayStoreOptions{Clock: clk.Now}),
		&authz.VerifierOptions{Clock: clk.Now, KeySet: &authz.KeySetOptions{HTTPClient: srv.Client()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	attest := func() string {
		tok, err := att.Attest(ctx, idRequest())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	verify := func(tok string) error { _, err := v.Verify(ctx, tok); return err }
	fetches := func(want int32) {
		t.Helper()
		if got := jwks.n.Load(); got != want || v.KeySet(idIssuer).Fetches() != int(want) {
			t.Fatalf("%d JWKS requests (%d fetches started), want %d", got, v.KeySet(idIssuer).Fetches(), want)
		}
	}

	old1, old2 := attest(), attest()
	if err := verify(old1); err != nil {
		t.Fatalf("k1 token: %v", err)
	}
	fetches(1)

	// Rotation step 1: publish k2 and switch to it at once (skipping the
	// recommended wait, to exercise the unknown-kid refetch).
	k2, _ := authz.GenerateSigningKey("k2", jose.ES256)
	if err := att.AddKey(k2); err != nil {
		t.Fatal(err)
	}
	if err := att.SetActiveKey("k2"); err != nil {
		t.Fatal(err)
	}
	new1, new2 := attest(), attest()
	// The cache is fresh and the last fetch was just now: the unknown kid
	// does not trigger a fetch, however many tokens arrive.
	for range 10 {
		if err := verify(new1); !errors.Is(err, authz.ErrUnknownKey) {
			t.Fatalf("new-key token before refetch: %v", err)
		}
	}
	fetches(1)
	clk.Advance(31 * time.Second)
	if err := verify(new1); err != nil {
		t.Fatalf("new-key token after the refetch interval: %v", err)
	}
	fetches(2)
	// Both keys are published: old tokens still verify, without fetching.
	if err := verify(old2); err != nil {
		t.Fatalf("old-key token during rotation: %v", err)
	}
	fetches(2)

	// Rotation step 2: withdraw k1. Once the cache ages out (max-age one
	// minute), tokens signed with k1 fail with unknown kid.
	old3 := func() string {
		_ = att.SetActiveKey("k1")
		defer func() { _ = att.SetActiveKey("k2") }()
		return attest()
	}()
	if err := att.RemoveKey("k1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(61 * time.Second)
	if err := verify(new2); err != nil {
		t.Fatalf("new-key token after k1 removal: %v", err)
	}
	fetches(3)
	if err := verify(old3); !errors.Is(err, authz.ErrUnknownKey) {
		t.Fatalf("token of the removed key: %v, want unknown_key", err)
	}
	fetches(3)
}

func TestKeySetCoalescesConcurrentMisses(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	jwks := &countingJWKS{h: e.att.JWKSHandler(), gate: make(chan struct{})}
	srv := httptest.NewServer(jwks)
	defer srv.Close()
	ks, err := authz.NewKeySet(srv.URL, &authz.KeySetOptions{HTTPClient: srv.Client(), Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok atomic.Int32
	for range 20 {
		wg.Go(func() {
			if k, err := ks.Key(context.Background(), "k1"); err == nil && k.KeyID == "k1" {
				ok.Add(1)
			}
		})
	}
	// Let the first request reach the server, then hold it so that the
	// others pile up behind it.
	for jwks.n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(jwks.gate)
	wg.Wait()
	if jwks.n.Load() != 1 || ks.Fetches() != 1 {
		t.Fatalf("%d fetches (%d started) for 20 concurrent misses, want 1", jwks.n.Load(), ks.Fetches())
	}
	if ok.Load() != 20 {
		t.Fatalf("%d of 20 callers got the key", ok.Load())
	}
}

func TestKeySetRevalidatesWithETag(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	var notModified atomic.Int32
	h := e.att.JWKSHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusNotModified {
			notModified.Add(1)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()
	ks, _ := authz.NewKeySet(srv.URL, &authz.KeySetOptions{HTTPClient: srv.Client(), Clock: e.clock.Now})
	ctx := context.Background()
	for range 3 {
		if _, err := ks.Key(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(6 * time.Minute) // past max-age: revalidate
	}
	if ks.Fetches() != 3 || notModified.Load() != 2 {
		t.Fatalf("%d fetches, %d answered 304; want 3 and 2", ks.Fetches(), notModified.Load())
	}
	// A changed set is fetched in full.
	k2, _ := authz.GenerateSigningKey("k2", jose.ES256)
	_ = e.att.AddKey(k2)
	if _, err := ks.Key(ctx, "k2"); err != nil {
		t.Fatalf("new key after revalidation: %v", err)
	}
}

func TestKeySetKeepsLastGoodCopy(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	jwks := &countingJWKS{h: e.att.JWKSHandler()}
	srv := httptest.NewServer(jwks)
	defer srv.Close()
	ks, _ := authz.NewKeySet(srv.URL, &authz.KeySetOptions{HTTPClient: srv.Client(), Clock: e.clock.Now})
	ctx := context.Background()
	if _, err := ks.Key(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	jwks.fail.Store(true)
	e.clock.Advance(time.Hour)
	if _, err := ks.Key(ctx, "k1"); err != nil {
		t.Fatalf("stale key not served while the JWKS is down: %v", err)
	}
	if jwks.n.Load() != 2 {
		t.Fatalf("%d fetches, want 2", jwks.n.Load())
	}
	_, err := ks.Key(ctx, "k9")
	if !errors.Is(err, authz.ErrUnknownKey) {
		t.Fatalf("unknown kid while down: %v", err)
	}
	if jwks.n.Load() != 2 {
		t.Fatalf("failed fetch retried within the refetch interval: %d fetches", jwks.n.Load())
	}
}

func TestKeySetFailures(t *testing.T) {
	ctx := context.Background()
	if _, err := authz.NewKeySet("http://orchestrator.example/jwks.json", nil); !errors.Is(err, safehttp.ErrInsecureURL) {
		t.Fatalf("plain http to a remote host: %v", err)
	}
	if _, err := authz.NewKeySet("ftp://localhost/jwks.json", nil); err == nil {
		t.Fatal("ftp URL accepted")
	}
	for name, serve := range map[string]func(w http.ResponseWriter){
		"too large": func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 70<<10) + `]}`)) },
		"not JSON":  func(w http.ResponseWriter) { _, _ = w.Write([]byte(`<html>`)) },
		"no keys":   func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"kys":[]}`)) },
		"redirect to a remote http URL": func(w http.ResponseWriter) {
			w.Header().Set("Location", "http://evil.example/jwks.json")
			w.WriteHeader(http.StatusFound)
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(&countingJWKS{extra: serve})
			defer srv.Close()
			ks, err := authz.NewKeySet(srv.URL, &authz.KeySetOptions{HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ks.Key(ctx, "k1"); !errors.Is(err, authz.ErrKeySetUnavailable) {
				t.Fatalf("got %v, want jwks_unavailable", err)
			}
		})
	}
}

func TestParseJWKS(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	pub, _ := json.Marshal(e.att.JWKS().Keys[0])
	priv, _ := json.Marshal(jose.JSONWebKey{Key: e.key.Key, KeyID: "private", Algorithm: "EdDSA"})
	doc := `{"keys":[` + string(pub) + `,` + string(priv) + `,
		{"kty":"weird","kid":"w"},
		{"kty":"oct","k":"c2VjcmV0","kid":"mac"},
		{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
		{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"enc","use":"enc"}]}`
	set, err := authz.ParseJWKS([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0].KeyID != "k1" {
		t.Fatalf("kept %v, want only k1", set.Keys)
	}
}

// FuzzParseJWKS: any bytes parse or fail cleanly; what parses holds only
// public signature keys with a kid.
func FuzzParseJWKS(f *testing.F) {
	e := newIDEnv(f, jose.EdDSA)
	k2, _ := authz.GenerateSigningKey("k2", jose.ES256)
	_ = e.att.AddKey(k2)
	good, _ := json.Marshal(e.att.JWKS())
	f.Add(good)
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":"e"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := authz.ParseJWKS(b)
		if err != nil {
			if !errors.Is(err, authz.ErrKeySetUnavailable) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for _, k := range set.Keys {
			if k.KeyID == "" || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
				t.Fatalf("kept unusable key %+v", k)
			}
		}
	})
}

// A caller that gives up on a JWKS fetch does not fail the callers waiting
// on the same fetch, nor hold back their refetch for MinRefetchInterval.
func TestKeySetAbandonedFetchDoesNotFailOthers(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	jwks := e.att.JWKSHandler()
	var calls atomic.Int32
	first := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			close(first)
			<-r.Context().Done() // hangs until its caller gives up
			return
		}
		jwks.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ks, err := authz.NewKeySet(srv.URL, &authz.KeySetOptions{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	leaderCtx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := ks.Key(leaderCtx, "k1")
		leaderErr <- err
	}()
	<-first
	followerErr := make(chan error, 1)
	go func() {
		k, err := ks.Key(context.Background(), "k1")
		if err == nil && k.KeyID != "k1" {
			err = errors.New("wrong key")
		}
		followerErr <- err
	}()
	cancel()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Errorf("leader: %v, want context.Canceled", err)
	}
	if err := <-followerErr; err != nil {
		t.Fatalf("follower failed with the leader: %v", err)
	}
}

// TestKeySetIssuerUpLate: while no copy of the JWKS was ever fetched, a
// failed fetch is retried after 1 s, 2 s, 4 s, … (never sooner), so an
// issuer that was down at first is trusted within a second or two of
// coming up, not after the full MinRefetchInterval; once a copy exists,
// the full interval applies again.
func TestKeySetIssuerUpLate(t *testing.T) {
	e := newIDEnv(t, jose.EdDSA)
	jwks := &countingJWKS{h: e.att.JWKSHandler()}
	jwks.fail.Store(true)
	srv := httptest.NewServer(jwks)
	defer srv.Close()
	ks, _ := authz.NewKeySet(srv.URL, &authz.KeySetOptions{HTTPClient: srv.Client(), Clock: e.clock.Now})
	ctx := context.Background()
	key := func() error { _, err := ks.Key(ctx, "k1"); return err }
	if err := key(); !errors.Is(err, authz.ErrKeySetUnavailable) {
		t.Fatalf("issuer down: %v", err)
	}
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		e.clock.Advance(wait - time.Millisecond)
		_ = key()
		if got := jwks.n.Load(); got != int32(i+1) {
			t.Fatalf("after %v: %d fetches, want %d (no retry before the backoff)", wait, got, i+1)
		}
		e.clock.Advance(time.Millisecond)
		_ = key()
		if got := jwks.n.Load(); got != int32(i+2) {
			t.Fatalf("after %v: %d fetches, want %d", wait, got, i+2)
		}
	}
	jwks.fail.Store(false) // the issuer comes up
	e.clock.Advance(8 * time.Second)
	if err := key(); err != nil {
		t.Fatalf("issuer up: %v", err)
	}
	n := jwks.n.Load()
	// A copy is loaded: an unknown kid refetches at most once per
	// MinRefetchInterval again.
	_, _ = ks.Key(ctx, "k9")
	e.clock.Advance(2 * time.Second)
	_, _ = ks.Key(ctx, "k9")
	if got := jwks.n.Load(); got != n {
		t.Fatalf("with a copy loaded: %d fetches for two misses within the interval, want %d", got, n)
	}
}

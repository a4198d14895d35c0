package payment_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

func TestIdempotencyCanonicalJSON(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"b": 2, "a": 1}`, `{"a":1,"b":2}`},
		{` [ 1 , "x" , null , true , false ] `, `[1,"x",null,true,false]`},
		{`{"a":{"d":[{"z":1,"y":2}],"c":"\u0041\n\u001f"}}`, `{"a":{"c":"A\n\u001f","d":[{"y":2,"z":1}]}}`},
		// Member order by UTF-16 code units (RFC 8785 §3.2.3): the emoji's
		// surrogates sort before U+FB33 although its code point is larger.
		{`{"\ufb33":7,"\ud83d\ude00":6,"\u20ac":5,"\u00f6":4,"\u0080":3,"1":2,"\r":1}`,
			"{\"\\r\":1,\"1\":2,\"\u0080\":3,\"\u00f6\":4,\"\u20ac\":5,\"\U0001F600\":6,\"\ufb33\":7}"},
		{`-0`, `0`},
		{`1.50`, `1.5`},
		{`1E3`, `1000`},
		// Numbers are IEEE 754 doubles written as ECMAScript does (RFC 8785 §3.2.2.3).
		{`1.0`, `1`},
		{`[1, 1.0, 1E0, 100e-2]`, `[1,1,1,1]`},
		{`123456789012345678901234567890`, `1.2345678901234568e+29`},
		{`9007199254740993`, `9007199254740992`},
		{`0.0000001`, `1e-7`},
		{`1e21`, `1e+21`},
		{`"\u2028</script>"`, "\"\u2028</script>\""},
	}
	for _, c := range cases {
		got, err := payment.CanonicalJSON([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"a":{"b":1,"b":1}}`, `{"a":1} x`, `{`, ``, `[1,]`, `1e999`, `-1e400`} {
		if _, err := payment.CanonicalJSON([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	deep := bytes.Repeat([]byte("["), paywire.MaxJSONDepth+2)
	if _, err := payment.CanonicalJSON(deep); err == nil {
		t.Error("unbounded nesting accepted")
	}
	if !bytes.Equal(payment.Fingerprint([]byte(`{"a":1,"b":[1,2]}`)), payment.Fingerprint([]byte("{ \"b\":[1,2],\n\"a\":1 }"))) {
		t.Error("reordered body has another fingerprint")
	}
	if bytes.Equal(payment.Fingerprint([]byte(`{"a":null}`)), payment.Fingerprint([]byte(`{}`))) {
		t.Error("null and absent share a fingerprint")
	}
	if bytes.Equal(payment.Fingerprint([]byte(`[1,2]`)), payment.Fingerprint([]byte(`[2,1]`))) {
		t.Error("array order ignored")
	}
}

func TestIdempotentPanicFreesKey(t *testing.T) {
	store := payment.NewMemoryIdempotencyStore()
	fail := true
	h := payment.Idempotent(store, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail {
			panic("boom")
		}
		w.WriteHeader(http.StatusOK)
	}))
	req := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/x", bytes.NewBufferString(`{}`))
		r.Header.Set("Idempotency-Key", "k")
		return r
	}
	func() {
		defer func() { _ = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), req())
	}()
	fail = false
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req())
	if rr.Code != http.StatusOK || rr.Header().Get("Idempotent-Replayed") != "" {
		t.Fatalf("after panic: %d %v", rr.Code, rr.Header())
	}
}

func TestIdempotentLimitsAndScope(t *testing.T) {
	calls := 0
	h := payment.Idempotent(payment.NewMemoryIdempotencyStore(), &payment.IdempotencyOptions{
		MaxBody:  32,
		Identity: func(r *http.Request) string { return r.Header.Get("X-Who") },
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		fmt.Fprint(w, calls)
	}))
	do := func(who, path, key, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewBufferString(body))
		r.Header.Set("Idempotency-Key", key)
		r.Header.Set("X-Who", who)
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, r)
		return rr
	}
	if rr := do("a", "/x", "k", string(bytes.Repeat([]byte("x"), 33))); rr.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", rr.Code)
	}
	if rr := do("a", "/x", string(bytes.Repeat([]byte("k"), 256)), "{}"); rr.Code != http.StatusBadRequest {
		t.Errorf("long key: %d", rr.Code)
	}
	if rr := do("a", "/x", "k\x01", "{}"); rr.Code != http.StatusBadRequest {
		t.Errorf("control character in key: %d", rr.Code)
	}
	do("a", "/x", "k", "{}")
	do("b", "/x", "k", "{}") // another identity: its own key
	do("a", "/y", "k", "{}") // another path: its own key
	if rr := do("a", "/x", "k", "{}"); rr.Body.String() != "1" {
		t.Errorf("replay body %q", rr.Body.String())
	}
	if calls != 3 {
		t.Errorf("calls = %d, want 3", calls)
	}
}

func TestRedemptionHandlerMisc(t *testing.T) {
	w := paytest.NewWorld(t)
	srv := server(w, t)
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/payment/redemptions", nil)
	req.Header.Set("Authorization", "Bearer cf-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
		t.Errorf("DELETE: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/payment/redemptions/x", nil)
	req.Header.Set("Authorization", "Bearer cf-key")
	req.Header.Set("Agent-Provisioning-Version", "1.0")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("version 1.0: %d", resp.StatusCode)
	}
	iss, _ := issuer.NewIssuer(paytest.IssuerURL, paytest.Key(), w.Ledger, &issuer.IssuerOptions{Rail: w.Rail})
	rr := httptest.NewRecorder()
	iss.RedemptionHandler().ServeHTTP(rr, httptest.NewRequest(http.MethodPost, "/", nil))
	if rr.Code != http.StatusUnauthorized {
		t.Errorf("no authenticator configured: %d", rr.Code)
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/payment/redemptions", nil)
	resp, _ = http.DefaultClient.Do(req)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("anonymous: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

// BenchmarkIdempotent reports the middleware's cost (first request plus
// one replay, in memory) as a ratio to calling the bare handler twice,
// interleaved in the same iterations. ns/op covers both.
func BenchmarkIdempotent(b *testing.B) {
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	wrapped := payment.Idempotent(payment.NewMemoryIdempotencyStore(), nil)(bare)
	body := []byte(`{"token":"a.b.c","amount":{"amount":1299,"currency":"USD"}}`)
	run := func(h http.Handler, key string) {
		for range 2 {
			r := httptest.NewRequest(http.MethodPost, "/redeem", bytes.NewReader(body))
			r.Header.Set("Idempotency-Key", key)
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	var base, work time.Duration
	b.ReportAllocs()
	for n := range b.N {
		t0 := time.Now()
		run(bare, "k")
		t1 := time.Now()
		run(wrapped, fmt.Sprint("k", n))
		work += time.Since(t1)
		base += t1.Sub(t0)
	}
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "bare-ns/op")
	b.ReportMetric(float64(work)/float64(base), "x-bare")
}

package payment_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/payment"
)

// A final response larger than MaxResponseBytes reaches its caller whole,
// is not buffered beyond the limit, and is never re-executed: replays get
// 500 idempotency_response_too_large. A response within the limit is kept
// and replayed as usual; a transient oversized one is not kept.
func TestIdempotentMaxResponseBytes(t *testing.T) {
	const limit = 64
	calls := map[string]int{}
	status := http.StatusCreated
	h := payment.Idempotent(payment.NewMemoryIdempotencyStore(), &payment.IdempotencyOptions{MaxResponseBytes: limit, Logger: paytest.QuietLogger()})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls[r.URL.Path]++
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(status)
			n := limit // exactly the limit: kept
			if r.URL.Path != "/fits" {
				n = 3 * limit
			}
			for i := range n / 16 {
				_, _ = w.Write(bytes.Repeat([]byte{'a' + byte(i)}, 16))
			}
		}))
	do := func(path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{}`))
		r.Header.Set("Idempotency-Key", "k")
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, r)
		return rr
	}

	first := do("/big")
	if first.Code != http.StatusCreated || first.Body.Len() != 3*limit || first.Header().Get("Content-Type") != "text/plain" {
		t.Fatalf("first big response: %d, %d bytes, %v", first.Code, first.Body.Len(), first.Header())
	}
	if !strings.HasPrefix(first.Body.String(), strings.Repeat("a", 16)+strings.Repeat("b", 16)) || !strings.HasSuffix(first.Body.String(), strings.Repeat("l", 16)) {
		t.Fatalf("first big response out of order: %q", first.Body.String())
	}
	for range 2 {
		rr := do("/big")
		if rr.Code != http.StatusInternalServerError || rr.Header().Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay of big response: %d %v", rr.Code, rr.Header())
		}
		d := problem.Read(rr.Body, 1<<10)
		if d == nil || d.Code != payment.ErrIdempotencyResponseTooLarge.Code || !strings.Contains(d.Detail, "201") {
			t.Fatalf("replay problem = %+v", d)
		}
	}
	if calls["/big"] != 1 {
		t.Fatalf("big handler ran %d times, want 1", calls["/big"])
	}

	for range 2 {
		if rr := do("/fits"); rr.Code != http.StatusCreated || rr.Body.Len() != limit {
			t.Fatalf("response at the limit: %d, %d bytes", rr.Code, rr.Body.Len())
		}
	}
	if calls["/fits"] != 1 {
		t.Fatalf("response at the limit: handler ran %d times, want 1 (replayed)", calls["/fits"])
	}

	status = http.StatusServiceUnavailable // transient: not kept, whatever its size
	for range 2 {
		if rr := do("/busy"); rr.Code != http.StatusServiceUnavailable || rr.Body.Len() != 3*limit {
			t.Fatalf("transient big response: %d, %d bytes", rr.Code, rr.Body.Len())
		}
	}
	if calls["/busy"] != 2 {
		t.Fatalf("transient big response: handler ran %d times, want 2", calls["/busy"])
	}
}

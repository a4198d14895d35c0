package payment_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/agentprov/agentprov/payment"
)

// Idempotent wraps any state-changing handler with the §5.3 rules.
func ExampleIdempotent() {
	h := payment.Idempotent(payment.NewMemoryIdempotencyStore(), nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":"order-1"}`)
	}))
	for _, body := range []string{`{"a":1,"b":2}`, `{"b":2, "a":1}`, `{"a":2}`} {
		req := httptest.NewRequest(http.MethodPost, "/orders", stringsReader(body))
		req.Header.Set("Idempotency-Key", "3f1c")
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		fmt.Println(rr.Code, "replayed:", rr.Header().Get("Idempotent-Replayed") == "true")
	}
	// Output:
	// 201 replayed: false
	// 201 replayed: true
	// 422 replayed: false
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

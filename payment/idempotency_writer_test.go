package payment

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The writer never holds more than the limit, however much is written.
func TestIdemWriterBounded(t *testing.T) {
	rr := httptest.NewRecorder()
	spilled := 0
	b := &idemWriter{w: rr, header: http.Header{}, limit: 10, spill: func(int, http.Header) { spilled++ }}
	for range 100 {
		if _, err := b.Write([]byte("0123456")); err != nil {
			t.Fatal(err)
		}
		if b.body.Len() > 10 {
			t.Fatalf("buffered %d bytes over a limit of 10", b.body.Len())
		}
	}
	if spilled != 1 || rr.Body.Len() != 700 || rr.Code != http.StatusOK {
		t.Fatalf("spilled %d times, sent %d bytes, status %d", spilled, rr.Body.Len(), rr.Code)
	}
}

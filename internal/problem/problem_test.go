package problem

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteRead(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, http.StatusBadRequest, "invalid_ref", `service ref "x" has no '/'`)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != MediaType {
		t.Fatalf("Content-Type %q", ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
	d := Read(rec.Body, 4096)
	if d == nil || d.Code != "invalid_ref" || d.Status != 400 || d.Type != TypeBase+"invalid_ref" {
		t.Fatalf("read back %+v", d)
	}
	if !strings.Contains(d.Error(), "invalid_ref") {
		t.Fatalf("Error() = %q", d.Error())
	}
}

func TestReadRejectsNonProblems(t *testing.T) {
	for _, body := range []string{"", "not json", `{"foo":1}`, `[1,2]`} {
		if d := Read(strings.NewReader(body), 4096); d != nil {
			t.Errorf("Read(%q) = %+v, want nil", body, d)
		}
	}
	// A body beyond the limit is cut and so fails to decode.
	long := `{"code":"x","detail":"` + strings.Repeat("a", 100) + `"}`
	if d := Read(strings.NewReader(long), 20); d != nil {
		t.Errorf("oversized problem decoded: %+v", d)
	}
}

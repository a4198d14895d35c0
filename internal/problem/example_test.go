package problem_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/agentprov/agentprov/internal/problem"
)

// Write sends an RFC 9457 body with the protocol's "code" member; Read
// turns it back into Details on the client.
func ExampleWrite() {
	rec := httptest.NewRecorder()
	problem.Write(rec, http.StatusNotFound, "not_found", "no such service")
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"))
	d := problem.Read(rec.Body, 64<<10)
	fmt.Println(d.Code, d.Detail)
	// Output:
	// 404 application/problem+json no-store
	// not_found no such service
}

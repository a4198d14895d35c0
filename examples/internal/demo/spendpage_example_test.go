package demo

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The spend page is read only until the person opens the one-time link
// that serve prints; the link works once.
func TestSpendPageSignInOnce(t *testing.T) {
	p := newPair(t)
	mux := http.NewServeMux()
	signIn, err := p.orch.MountSpendPage(mux, "p")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var got []int
	for range 2 {
		resp, err := c.Get(srv.URL + signIn)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = append(got, resp.StatusCode)
	}
	if fmt.Sprint(got) != "[303 403]" {
		t.Fatalf("sign-in link answered %v, want [303 403]", got)
	}
}

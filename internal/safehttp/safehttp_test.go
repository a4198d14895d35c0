package safehttp

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	ok := []string{
		"https://example.com/.well-known/agent-provisioning",
		"https://example.com:8443/x",
		"http://127.0.0.1:8080/catalog.json",
		"http://127.5.6.7/x",
		"http://localhost/x",
		"http://LOCALHOST:1/x",
		"http://[::1]:9/x",
	}
	for _, raw := range ok {
		if _, err := CheckURL(raw); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", raw, err)
		}
	}
	bad := []string{
		"http://example.com/x",        // plain http off loopback
		"http://10.0.0.1/x",           // private is not loopback
		"http://localhost.evil.com/x", // suffix trick
		"ftp://127.0.0.1/x",
		"file:///etc/passwd",
		"javascript:alert(1)",
		"https://user:pw@example.com/x", // userinfo
		"https:///nohost",
		"/relative/path",
		"",
		"http://127.0.0.1:bad/",
	}
	for _, raw := range bad {
		if _, err := CheckURL(raw); !errors.Is(err, ErrInsecureURL) {
			t.Errorf("CheckURL(%q) = %v, want ErrInsecureURL", raw, err)
		}
	}
}

func TestReadAll(t *testing.T) {
	b, err := ReadAll(strings.NewReader("12345"), 5)
	if err != nil || string(b) != "12345" {
		t.Fatalf("at the limit: %q, %v", b, err)
	}
	if _, err := ReadAll(strings.NewReader("123456"), 5); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v, want ErrTooLarge", err)
	}
	if b, err := ReadAll(strings.NewReader(""), 0); err != nil || len(b) != 0 {
		t.Fatalf("empty: %q, %v", b, err)
	}
}

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://a.b/c", "http://127.0.0.1/", "http://[::1]/", "http://x/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := CheckURL(raw)
		if err != nil {
			return
		}
		switch strings.ToLower(u.Scheme) {
		case "https":
		case "http":
			if !IsLoopback(u.Hostname()) {
				t.Fatalf("accepted http URL %q off loopback", raw)
			}
		default:
			t.Fatalf("accepted scheme %q in %q", u.Scheme, raw)
		}
		if u.User != nil {
			t.Fatalf("accepted userinfo in %q", raw)
		}
	})
}

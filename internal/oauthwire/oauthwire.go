// Package oauthwire holds the small HTTP and syntax helpers that the
// authz package and its role packages (authz/provision, authz/vault) share:
// JSON answers, well-known URLs, redirect-safe clients, challenge rendering
// and identifier syntax checks. It is internal so that none of them becomes
// public API; every function is safe for concurrent use.
package oauthwire

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
	"github.com/agentprov/agentprov/internal/wireid"
)

// WellKnownURL inserts a well-known path between host and path of id, as
// RFC 8414 §3.1 and RFC 9728 §3.1 specify.
func WellKnownURL(id, wellKnown string) (string, error) {
	u, err := url.Parse(id)
	if err != nil {
		return "", err
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	u.RawPath = ""
	u.Path = wellKnown + path
	return u.String(), nil
}

// SafeClient returns a shallow copy of client whose redirects are held to
// the HTTPS-or-loopback rule; the caller's client is left untouched.
func SafeClient(client *http.Client) *http.Client {
	if client == nil {
		client = http.DefaultClient
	}
	c := *client
	prev := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if _, err := safehttp.CheckURL(req.URL.String()); err != nil {
			return err
		}
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	return &c
}

// WriteJSON sends v as a JSON body with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any, cache string) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", cache)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// MetadataMaxAge is the caching allowed for discovery documents.
const MetadataMaxAge = "public, max-age=300"

// ValidProjectID reports whether s is a project id (PROTOCOL §2.5).
func ValidProjectID(s string) bool { return wireid.ProjectID(s) }

// ValidProviderID reports whether s is a provider id (PROTOCOL §2.5).
func ValidProviderID(s string) bool { return wireid.ProviderID(s) }

// ValidServiceID reports whether s is a service id (PROTOCOL §2.5).
func ValidServiceID(s string) bool { return wireid.ServiceID(s) }

// ValidServiceRef reports whether s is "provider/service" (PROTOCOL §2.5).
func ValidServiceRef(s string) bool { return wireid.ServiceRef(s) }

// GetOrHead reports whether r is a GET or HEAD, answering 405 otherwise:
// the handlers are exported and may be mounted without a method pattern.
func GetOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	problem.Write(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
	return false
}

// ValidScopeToken reports RFC 6749 §3.3 scope-token syntax.
func ValidScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Truncate shortens s to n bytes, marking the cut with an ellipsis.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// IsToken68Char reports whether c may appear in an RFC 7235 token68.
func IsToken68Char(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", c) >= 0
}

// FormatChallenge renders a challenge with every parameter quoted, in the
// order given (pairs of name, value; empty values are skipped).
func FormatChallenge(scheme string, kv ...string) string {
	var b strings.Builder
	b.WriteString(scheme)
	first := true
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if first {
			b.WriteByte(' ')
			first = false
		} else {
			b.WriteString(", ")
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(kv[i+1])
		b.WriteString(v)
		b.WriteByte('"')
	}
	return b.String()
}

// PKCEMethod is the only PKCE method accepted: RFC 7636 "plain" would send
// the verifier itself through the browser and defeats the purpose.
const PKCEMethod = "S256"

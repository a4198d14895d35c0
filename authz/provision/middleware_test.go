package provision_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/authztesting"
	"github.com/agentprov/agentprov/internal/clock"
)

type failingTokens struct{ provision.TokenStore }

func (failingTokens) Lookup(context.Context, authz.TokenHash) (*provision.IssuedToken, error) {
	return nil, errors.New("database is down")
}

func TestMiddleware(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	fake := clock.NewFake(now)
	tokens := provision.NewMemoryTokenStore()
	put := func(secret string, scopes []string, exp time.Time) {
		t.Helper()
		err := tokens.Put(ctx, provision.IssuedToken{
			Hash: authz.HashToken(secret), AccountID: "acct_1", User: provision.UserRef{Issuer: authztesting.OrchestratorIssuer, Subject: "s"},
			Scopes: scopes, IssuedAt: now, ExpiresAt: exp,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("apt_good", []string{"zones:read", "dns:write"}, now.Add(time.Hour))
	put("apt_readonly", []string{"zones:read"}, now.Add(time.Hour))
	put("apt_expired", []string{"zones:read", "dns:write"}, now.Add(-time.Second))
	put("apt_revoked", []string{"zones:read", "dns:write"}, now.Add(time.Hour))
	if _, err := tokens.Revoke(ctx, authz.HashToken("apt_revoked"), authztesting.OrchestratorIssuer, now); err != nil {
		t.Fatal(err)
	}
	const prm = "https://acme.example/.well-known/oauth-protected-resource"
	mw, err := provision.NewMiddleware(tokens, &provision.MiddlewareOptions{ResourceMetadataURL: prm, Clock: fake.Now})
	if err != nil {
		t.Fatal(err)
	}
	broken, _ := provision.NewMiddleware(failingTokens{tokens}, &provision.MiddlewareOptions{ResourceMetadataURL: prm, Logger: slog.New(slog.DiscardHandler)})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := provision.IdentityFromContext(r.Context())
		if !ok {
			t.Error("no identity in context")
		}
		io.WriteString(w, id.AccountID)
	})
	cases := []struct {
		name      string
		mw        *provision.Middleware
		auth      []string
		status    int
		code      string
		challenge string
	}{
		{"ok", mw, []string{"Bearer apt_good"}, 200, "", ""},
		{"scheme case-insensitive", mw, []string{"bearer apt_good"}, 200, "", ""},
		{"missing", mw, nil, 401, "missing_token", `Bearer resource_metadata="` + prm + `"`},
		{"basic", mw, []string{"Basic YTpi"}, 401, "invalid_token", ""},
		{"two headers", mw, []string{"Bearer apt_good", "Bearer apt_good"}, 401, "invalid_token", ""},
		{"bad chars", mw, []string{"Bearer apt good"}, 401, "invalid_token", ""},
		{"too long", mw, []string{"Bearer " + strings.Repeat("a", 2000)}, 401, "invalid_token", ""},
		{"unknown", mw, []string{"Bearer apt_unknown"}, 401, "invalid_token", ""},
		{"expired", mw, []string{"Bearer apt_expired"}, 401, "invalid_token", ""},
		{"revoked", mw, []string{"Bearer apt_revoked"}, 401, "invalid_token", ""},
		{"scope", mw, []string{"Bearer apt_readonly"}, 403, "insufficient_scope",
			`Bearer error="insufficient_scope", scope="zones:read dns:write", resource_metadata="` + prm + `"`},
		{"store down", broken, []string{"Bearer apt_good"}, 503, "temporarily_unavailable", ""},
	}
	for _, c := range cases {
		req := httptest.NewRequest(http.MethodGet, "/v1/records", nil)
		for _, a := range c.auth {
			req.Header.Add("Authorization", a)
		}
		rec := httptest.NewRecorder()
		c.mw.Require("zones:read", "dns:write")(api).ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Errorf("%s: status %d, want %d", c.name, rec.Code, c.status)
			continue
		}
		if c.status == 200 {
			if rec.Body.String() != "acct_1" {
				t.Errorf("%s: body %q", c.name, rec.Body.String())
			}
			continue
		}
		var p struct{ Code string }
		if err := jsonDecode(rec.Body, &p); err != nil || p.Code != c.code {
			t.Errorf("%s: problem code %q (%v), want %q", c.name, p.Code, err, c.code)
		}
		if rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: content type %q", c.name, rec.Header().Get("Content-Type"))
		}
		chs, err := authz.ParseWWWAuthenticate(rec.Header().Values("WWW-Authenticate")...)
		if c.status == 503 {
			if len(chs) != 0 {
				t.Errorf("%s: unexpected challenge", c.name)
			}
			continue
		}
		if err != nil || len(chs) != 1 || chs[0].Params["resource_metadata"] != prm {
			t.Errorf("%s: challenge %q", c.name, rec.Header().Get("WWW-Authenticate"))
		}
		if c.challenge != "" && rec.Header().Get("WWW-Authenticate") != c.challenge {
			t.Errorf("%s: challenge %q, want %q", c.name, rec.Header().Get("WWW-Authenticate"), c.challenge)
		}
		if c.code == "invalid_token" && chs[0].Params["error"] != "invalid_token" {
			t.Errorf("%s: challenge error %q", c.name, chs[0].Params["error"])
		}
	}
	if _, err := provision.NewMiddleware(nil, nil); err == nil {
		t.Error("NewMiddleware(nil) accepted")
	}
}

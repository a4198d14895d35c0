package provision_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/authztesting"
)

func TestAuthorizeEndpointErrors(t *testing.T) {
	o := authztesting.NewOrchestrator(t, authztesting.OrchestratorIssuer)
	var handled bool
	p := authztesting.NewProvider(t, "acme", authztesting.ProviderConfig{Trust: []*authztesting.Orchestrator{o}, Issuers: []string{authztesting.OrchestratorIssuer},
		Authorize: func(w http.ResponseWriter, r *http.Request, req *provision.AuthorizationRequest) (string, error) {
			switch r.Header.Get("X-Mode") {
			case "login":
				handled = true
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte("<form>sign in</form>"))
				return "", provision.ErrAuthorizationHandled
			case "broken":
				return "", errors.New("session store down")
			}
			return "acct_x", nil
		}})
	browser := p.Server.Client()
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	const challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	base := func() url.Values {
		return url.Values{"response_type": {"code"}, "client_id": {authztesting.OrchestratorIssuer}, "redirect_uri": {authztesting.CallbackURL},
			"state": {"s"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	}
	do := func(method string, q url.Values, mode string) (*http.Response, url.Values) {
		t.Helper()
		var req *http.Request
		if method == http.MethodGet {
			req, _ = http.NewRequest(method, p.Server.URL+provision.PathAuthorize+"?"+q.Encode(), nil)
		} else {
			req, _ = http.NewRequest(method, p.Server.URL+provision.PathAuthorize, strings.NewReader(q.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("X-Mode", mode)
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return resp, loc.Query()
	}
	// Errors about the client or redirect URI are never redirected.
	for name, mutate := range map[string]func(url.Values){
		"unknown client":    func(q url.Values) { q.Set("client_id", "https://evil.example") },
		"foreign redirect":  func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") },
		"redirect prefix":   func(q url.Values) { q.Set("redirect_uri", authztesting.CallbackURL+"/x") },
		"missing client_id": func(q url.Values) { q.Del("client_id") },
	} {
		q := base()
		mutate(q)
		resp, _ := do(http.MethodGet, q, "")
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" {
			t.Errorf("%s: %d location %q", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for name, c := range map[string]struct {
		mutate func(url.Values)
		mode   string
		code   string
	}{
		"token response type": {func(q url.Values) { q.Set("response_type", "token") }, "", "unsupported_response_type"},
		"short challenge":     {func(q url.Values) { q.Set("code_challenge", "abc") }, "", "invalid_request"},
		"unknown scope":       {func(q url.Values) { q.Set("scope", "root") }, "", "invalid_scope"},
		"authorizer failure":  {func(url.Values) {}, "broken", "server_error"},
	} {
		q := base()
		c.mutate(q)
		resp, got := do(http.MethodGet, q, c.mode)
		if resp.StatusCode != http.StatusFound || got.Get("error") != c.code || got.Get("state") != "s" || got.Get("iss") != p.Server.URL {
			t.Errorf("%s: %d %v", name, resp.StatusCode, got)
		}
	}
	// The authorizer may answer itself (a login page).
	if resp, _ := do(http.MethodGet, base(), "login"); resp.StatusCode != http.StatusOK || !handled {
		t.Errorf("login page: %d handled=%v", resp.StatusCode, handled)
	}
	// POST works like GET; repeated parameters are refused without redirect.
	if resp, got := do(http.MethodPost, base(), ""); resp.StatusCode != http.StatusFound || got.Get("code") == "" {
		t.Errorf("POST authorize: %d %v", resp.StatusCode, got)
	}
	q := base()
	q.Add("state", "t")
	if resp, _ := do(http.MethodGet, q, ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("repeated state: %d", resp.StatusCode)
	}
	if resp, _ := do(http.MethodPut, base(), ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", resp.StatusCode)
	}
}

package vault

import (
	"strings"
	"testing"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// FuzzLinkAnswers feeds arbitrary token and device authorization answers to
// the Linker's parsers: they never panic, and whatever they accept meets
// the checks the Linker relies on.
func FuzzLinkAnswers(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"access_token":"t","token_type":"Bearer","expires_in":60,"scope":"a b","account_id":"a1","link_action":"created"}`))
	f.Add(200, "application/json; charset=utf-8", []byte(`{"device_code":"d","user_code":"BCDF-GHJK","verification_uri":"https://p.example/device","expires_in":600,"interval":5}`))
	f.Add(401, "application/json", []byte(`{"error":"consent_required","resource_metadata":"https://p.example/.well-known/oauth-protected-resource"}`))
	f.Add(400, "application/json", []byte(`{"error":"slow_down","interval":10}`))
	f.Add(400, "text/html", []byte(`<html>`))
	f.Add(200, "application/json", []byte(`{"access_token":"t"} {}`))
	f.Fuzz(func(t *testing.T, status int, ctype string, body []byte) {
		tok, hint, err := parseTokenAnswer(status, ctype, body)
		switch {
		case err == nil && (tok == nil || tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") ||
			(tok.LinkAction != authz.LinkCreated && tok.LinkAction != authz.LinkExisting) || tok.ExpiresIn < 0 || tok.ExpiresIn > maxExpiresIn):
			t.Fatalf("accepted a bad token answer: %+v", tok)
		case err != nil && authz.AsError(err) == nil:
			t.Fatalf("error is not an *Error: %v", err)
		case err != nil && strings.ContainsAny(err.Error(), "\x00\x1b\r\n"):
			t.Fatalf("control characters in error: %q", err)
		case hint != nil && hint.ResourceMetadata != "":
			if _, err := safehttp.CheckURL(hint.ResourceMetadata); err != nil {
				t.Fatalf("kept an insecure resource_metadata: %q", hint.ResourceMetadata)
			}
		}
		d, _, err := parseDeviceAnswer(status, ctype, body)
		if err == nil {
			if d.DeviceCode == "" || d.UserCode == "" || d.ExpiresIn <= 0 || d.Interval < 0 {
				t.Fatalf("accepted a bad device answer: %+v", d)
			}
			if _, err := safehttp.CheckURL(d.VerificationURI); err != nil {
				t.Fatalf("accepted verification_uri %q", d.VerificationURI)
			}
		}
	})
}

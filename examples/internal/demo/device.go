package demo

import (
	"html/template"
	"net/http"
	"strings"
)

// deviceTemplate is the provider's device-flow approval page. Every value
// is escaped by html/template: the email and service come from the
// orchestrator's attestation and are shown as data.
var deviceTemplate = template.Must(template.New("device").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Provider}}: link an agent</title></head><body>
<h1>{{.Provider}}: link an orchestrator to your account</h1>
{{if .Message}}<p><strong>{{.Message}}</strong></p>{{end}}
{{if .Pending}}
<p><code>{{.Pending.ClientID}}</code> asks, for {{.Pending.Email}}, access to {{.Pending.Service}}
(project {{.Pending.Project}}).</p>
{{end}}
<form method="post" action="/device">
<p><label>Code <input name="user_code" value="{{.Code}}"></label></p>
<p><label>Signed in as (demo login: your account's email) <input name="email"></label></p>
<p><button name="action" value="allow">Allow</button> <button name="action" value="deny">Deny</button></p>
</form>
<p><small>Demo only: a real provider authenticates its user before this page.</small></p>
</body></html>
`))

// DemoLoginHandler serves /device, the page where an account holder
// approves or denies a device-flow link. Its "login" is the account's
// email: it exists to let the examples run the flow across processes and
// must never be exposed on a real provider.
func (p *Provider) DemoLoginHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'")
		w.Header().Set("X-Frame-Options", "DENY")
		data := struct {
			Provider, Code, Message string
			Pending                 any
		}{Provider: p.profile.Name}
		switch r.Method {
		case http.MethodGet:
			data.Code = r.URL.Query().Get("user_code")
			if data.Code != "" {
				if pending, err := p.Provisioner.PendingDevice(r.Context(), data.Code); err == nil {
					data.Pending = pending
				} else {
					data.Message = "No pending request for this code."
				}
			}
		case http.MethodPost:
			r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
			if err := r.ParseForm(); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				data.Message = "Malformed form."
				break
			}
			data.Code = r.PostForm.Get("user_code")
			var err error
			if r.PostForm.Get("action") == "deny" {
				err = p.Provisioner.DenyDevice(r.Context(), data.Code)
				data.Message = "Denied."
			} else {
				_, err = p.ApproveDevice(r.Context(), data.Code, strings.TrimSpace(r.PostForm.Get("email")))
				data.Message = "Approved: the agent's orchestrator is now linked to your account."
			}
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				data.Message = "Not done: unknown or expired code, or no account with that email."
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		_ = deviceTemplate.Execute(w, data)
	})
}

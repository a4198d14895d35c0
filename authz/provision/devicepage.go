package provision

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentprov/agentprov/internal/webform"
)

//go:embed templates/device.html
var devicePageFS embed.FS

var devicePageTemplate = template.Must(template.New("device.html").ParseFS(devicePageFS, "templates/device.html"))

// SignedInUser is the person signed in at the provider, as the provider's
// own login knows them: the account a device-flow approval links to, and
// how the page greets them.
type SignedInUser struct {
	// AccountID is the provider account the approval links (required).
	AccountID string
	// Display names the person on the page, e.g. their email.
	Display string
}

// SignedInFunc identifies the person signed in at the provider for r
// (typically from the provider's session cookie). It returns ok false when
// nobody is signed in; the page then asks the person to sign in first. It
// must not trust anything an agent could send, such as a bearer token: the
// approval it enables is the human's consent.
type SignedInFunc func(r *http.Request) (user SignedInUser, ok bool)

// DeviceService is what the page shows about the service a device-flow
// request asks for, as the provider's catalog states it.
type DeviceService struct {
	// Title and Description are the provider's text; the page escapes them.
	Title, Description string
	// Price is the price as shown to a person (e.g. "$5.00 / month"),
	// empty when unknown.
	Price string
}

// DevicePageOptions configures a DevicePage. The zero value is usable.
type DevicePageOptions struct {
	// ProviderName heads the page; default "this provider".
	ProviderName string
	// SignInURL is where a person who is not signed in is sent; the page
	// appends "next=" with its own URL. Empty: the page just asks the
	// person to sign in.
	SignInURL string
	// Service describes a service ref for the page; nil shows the ref only.
	Service func(ctx context.Context, serviceRef string) (DeviceService, bool)
	// CSRFKey keys the form tokens; nil draws a random key (tokens then
	// do not survive a restart or cross instances).
	CSRFKey []byte
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// DevicePage is the RFC 8628 §3.3 verification page of a Provisioner: the
// person enters the user code shown by their agent (or arrives from
// verification_uri_complete with it filled in), sees who asks (the
// orchestrator, the orchestrator's user, the service, scopes and price)
// and approves or denies. Approving calls [Provisioner.ApproveDevice] for
// the signed-in account; the orchestrator's next poll then gets its token.
// Denying makes that poll answer access_denied.
//
// Mount it at the Provisioner's VerificationURI (by default Issuer +
// "/device"). Every form is protected by http.CrossOriginProtection and a
// token bound to a SameSite=Strict cookie; all text is escaped by
// html/template; the page carries a CSP that allows no script. It is safe
// for concurrent use.
type DevicePage struct {
	p        *Provisioner
	signedIn SignedInFunc
	opts     DevicePageOptions
	csrf     *webform.CSRF
	log      *slog.Logger
}

// NewDevicePage returns the verification page of p. signedIn identifies
// the person signed in at the provider and is required.
func NewDevicePage(p *Provisioner, signedIn SignedInFunc, opts *DevicePageOptions) (*DevicePage, error) {
	if p == nil || signedIn == nil {
		return nil, errors.New("authz: device page: provisioner and signed-in function are required")
	}
	d := &DevicePage{p: p, signedIn: signedIn}
	if opts != nil {
		d.opts = *opts
	}
	if d.opts.ProviderName == "" {
		d.opts.ProviderName = "this provider"
	}
	if d.opts.SignInURL != "" {
		if u, err := url.Parse(d.opts.SignInURL); err != nil || (u.Scheme != "" && u.Scheme != "https" && u.Scheme != "http") {
			return nil, errors.New("authz: device page: SignInURL must be a path or an http(s) URL")
		}
	}
	d.csrf = webform.NewCSRF("agentprov_device_csrf", d.opts.CSRFKey)
	d.log = d.opts.Logger
	if d.log == nil {
		d.log = slog.Default()
	}
	return d, nil
}

type devicePageData struct {
	Provider, Action, Code, CSRF, SignIn string
	Style                                template.CSS
	User                                 *SignedInUser
	Pending                              *PendingLink
	Scopes                               []string
	Service                              DeviceService
	Expires                              string
	Message                              string
	Error                                bool
	Done                                 bool
}

// ServeHTTP serves GET (the code entry or the request to decide) and POST
// (approve or deny).
func (d *DevicePage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	webform.SetHeaders(w)
	data := devicePageData{Provider: d.opts.ProviderName, Action: r.URL.Path, Style: template.CSS(webform.Style)}
	user, ok := d.signedIn(r)
	if ok && user.AccountID != "" {
		data.User = &user
	} else if d.opts.SignInURL != "" {
		sep := "?"
		if strings.Contains(d.opts.SignInURL, "?") {
			sep = "&"
		}
		data.SignIn = d.opts.SignInURL + sep + "next=" + url.QueryEscape(r.URL.RequestURI())
	}
	status := http.StatusOK
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		data.Code = normalizeUserCode(strings.TrimSpace(r.URL.Query().Get("user_code")))
		if len(data.Code) > 16 {
			data.Code = ""
		}
		if data.Code != "" {
			if !d.describe(r.Context(), &data) {
				status = http.StatusNotFound
			}
		}
	case http.MethodPost:
		status = d.decide(w, r, &data)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	data.CSRF = d.csrf.Token(w, r)
	w.WriteHeader(status)
	if err := devicePageTemplate.Execute(w, data); err != nil {
		d.log.Warn("authz: device page: render", "err", err)
	}
}

// describe fills the pending request of data.Code; false when there is none.
func (d *DevicePage) describe(ctx context.Context, data *devicePageData) bool {
	g, err := d.p.pending(ctx, data.Code)
	if err != nil {
		data.Message, data.Error = "There is no pending request for this code: it may have expired or been decided already. Check the code your agent shows.", true
		return false
	}
	data.Pending = &PendingLink{UserCode: g.UserCode, ClientID: g.ClientID, User: g.User,
		Email: g.Email, Name: g.Name, Service: g.Service, Project: g.Project, ExpiresAt: g.ExpiresAt}
	data.Scopes = strings.Fields(g.Scope)
	data.Service = DeviceService{Title: g.Service}
	if d.opts.Service != nil {
		if s, ok := d.opts.Service(ctx, g.Service); ok {
			data.Service = s
		}
	}
	left := g.ExpiresAt.Sub(d.p.now.Now())
	data.Expires = left.Round(time.Minute).String()
	if left < time.Minute {
		data.Expires = "less than a minute"
	} else {
		data.Expires = strings.TrimSuffix(data.Expires, "0s")
	}
	return true
}

func (d *DevicePage) decide(w http.ResponseWriter, r *http.Request, data *devicePageData) int {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		data.Message, data.Error = "The form could not be read.", true
		return http.StatusBadRequest
	}
	data.Code = normalizeUserCode(strings.TrimSpace(r.PostForm.Get("user_code")))
	if err := d.csrf.Check(r); err != nil {
		data.Message, data.Error = "This form expired or did not come from this page. Reload the page and try again.", true
		data.Code = ""
		return http.StatusForbidden
	}
	if data.User == nil {
		data.Message, data.Error = "Sign in to "+d.opts.ProviderName+" before approving.", true
		return http.StatusUnauthorized
	}
	var err error
	switch r.PostForm.Get("action") {
	case "approve":
		if err = d.p.ApproveDevice(r.Context(), data.Code, data.User.AccountID); err == nil {
			data.Message = "Approved. Your agent's orchestrator is now linked to your account; you can close this page."
			d.log.Info("authz: device link approved on page", "account_id", data.User.AccountID)
		}
	case "deny":
		if err = d.p.DenyDevice(r.Context(), data.Code); err == nil {
			data.Message = "Denied. The orchestrator gets no access."
		}
	default:
		data.Message, data.Error = "Choose Approve or Deny.", true
		return http.StatusBadRequest
	}
	if err != nil {
		data.Message, data.Error = "Not done: there is no pending request for this code (expired or already decided).", true
		return http.StatusBadRequest
	}
	data.Done = true
	return http.StatusOK
}

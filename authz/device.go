package authz

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Device-flow errors (RFC 8628 §3.5), answered at the token endpoint while
// the client polls.
var (
	ErrAuthorizationPending = &Error{Code: "authorization_pending", Status: http.StatusBadRequest}
	ErrSlowDown             = &Error{Code: "slow_down", Status: http.StatusBadRequest}
	ErrDeviceCodeExpired    = &Error{Code: "expired_token", Status: http.StatusBadRequest}
	ErrAccessDenied         = &Error{Code: "access_denied", Status: http.StatusBadRequest}
	// ErrUnknownUserCode: ApproveDevice or DenyDevice got a user code that
	// is not pending (never issued, expired, already decided).
	ErrUnknownUserCode = &Error{Code: "unknown_user_code", Status: http.StatusNotFound}
)

// DeviceAuthorizationResponse is the RFC 8628 §3.2 response body.
type DeviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// PendingLink describes a device-flow link request awaiting the human, for
// the provider's approval page: which orchestrator user wants to link.
type PendingLink struct {
	UserCode  string
	ClientID  string
	User      UserRef
	Email     string
	Name      string
	Service   string
	Project   string
	ExpiresAt time.Time
}

type grantState int

const (
	grantPending grantState = iota
	grantApproved
	grantDenied
)

type deviceGrant struct {
	deviceKey string
	userCode  string
	clientID  string
	user      UserRef
	att       Attestation
	scope     string
	expires   time.Time
	interval  time.Duration
	lastPoll  time.Time
	state     grantState
	accountID string
}

type codeGrant struct {
	clientID    string
	redirectURI string
	challenge   string
	scope       string
	accountID   string
	expires     time.Time
}

// grantTable holds in-flight device and authorization codes, keyed by the
// SHA-256 of the code so a memory dump does not reveal live codes.
type grantTable struct {
	mu      sync.Mutex
	max     int
	devices map[string]*deviceGrant
	byUser  map[string]*deviceGrant
	codes   map[string]*codeGrant
}

func newGrantTable(max int) *grantTable {
	return &grantTable{max: max, devices: map[string]*deviceGrant{}, byUser: map[string]*deviceGrant{}, codes: map[string]*codeGrant{}}
}

func codeKey(code string) string {
	s := sha256.Sum256([]byte(code))
	return string(s[:])
}

// roomLocked evicts expired grants and reports whether one more fits.
func (g *grantTable) roomLocked(now time.Time) bool {
	if len(g.devices)+len(g.codes) < g.max {
		return true
	}
	for k, d := range g.devices {
		if !now.Before(d.expires) {
			delete(g.devices, k)
			delete(g.byUser, d.userCode)
		}
	}
	for k, c := range g.codes {
		if !now.Before(c.expires) {
			delete(g.codes, k)
		}
	}
	return len(g.devices)+len(g.codes) < g.max
}

// userCodeAlphabet avoids vowels (no words) and look-alike characters, as
// RFC 8628 §6.1 suggests.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

func newUserCode() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("authz: crypto/rand failed: " + err.Error())
	}
	out := make([]byte, 0, 9)
	for i, c := range b {
		if i == 4 {
			out = append(out, '-')
		}
		// 256 is not a multiple of 20; the bias (<8%) is irrelevant for a
		// short-lived code guarded by a lifetime.
		out = append(out, userCodeAlphabet[int(c)%len(userCodeAlphabet)])
	}
	return string(out)
}

// normalizeUserCode makes entry forgiving: case, dashes and spaces ignored.
func normalizeUserCode(s string) string {
	s = strings.ToUpper(s)
	s = strings.NewReplacer("-", "", " ", "").Replace(s)
	if len(s) != 8 {
		return s
	}
	return s[:4] + "-" + s[4:]
}

func newOpaqueCode() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("authz: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DeviceAuthorizationHandler serves the RFC 8628 device authorization
// endpoint. The request carries client_id (the orchestrator's issuer), an
// assertion (a fresh identity attestation binding the orchestrator user to
// the request) and optionally scope.
func (p *Provisioner) DeviceAuthorizationHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, err := readForm(w, r)
		if err != nil {
			p.writeOAuthError(w, err)
			return
		}
		resp, err := p.StartDevice(r.Context(), form)
		if err != nil {
			p.writeOAuthError(w, err)
			return
		}
		w.Header().Set("Pragma", "no-cache")
		writeJSON(w, http.StatusOK, resp, "no-store")
	})
}

// StartDevice runs a device authorization request given its form
// parameters, as DeviceAuthorizationHandler does.
func (p *Provisioner) StartDevice(ctx context.Context, form url.Values) (*DeviceAuthorizationResponse, error) {
	clientID := form.Get("client_id")
	if clientID == "" {
		return nil, errorf(ErrInvalidRequest, nil, "client_id is required")
	}
	att, err := p.verifyAssertion(ctx, form.Get("assertion"))
	if err != nil {
		return nil, err
	}
	if att.Issuer != clientID {
		return nil, errorf(ErrInvalidClient, nil, "client_id must be the attestation issuer")
	}
	scope := form.Get("scope")
	if _, err := p.grantScopes(att.Service, scope); err != nil {
		return nil, err
	}
	now := p.now.Now()
	dg := &deviceGrant{
		clientID: clientID,
		user:     UserRef{Issuer: att.Issuer, Subject: att.Subject},
		att:      *att,
		scope:    scope,
		expires:  now.Add(p.deviceTTL),
		interval: p.interval,
	}
	dg.att.Consent, dg.att.ConsentReceipt = "", nil
	device := newOpaqueCode()
	p.grants.mu.Lock()
	if !p.grants.roomLocked(now) {
		p.grants.mu.Unlock()
		return nil, errorf(ErrTemporarilyUnavailable, nil, "too many pending authorizations")
	}
	// Retry on the rare user-code collision rather than overwrite.
	for {
		dg.userCode = newUserCode()
		if _, taken := p.grants.byUser[dg.userCode]; !taken {
			break
		}
	}
	dg.deviceKey = codeKey(device)
	p.grants.devices[dg.deviceKey] = dg
	p.grants.byUser[dg.userCode] = dg
	p.grants.mu.Unlock()
	return &DeviceAuthorizationResponse{
		DeviceCode:              device,
		UserCode:                dg.userCode,
		VerificationURI:         p.verifyURI,
		VerificationURIComplete: p.verifyURI + "?user_code=" + url.QueryEscape(dg.userCode),
		ExpiresIn:               int64(p.deviceTTL / time.Second),
		Interval:                int64((p.interval + time.Second - 1) / time.Second),
	}, nil
}

// pendingLocked returns the live, undecided grant of userCode.
func (p *Provisioner) pendingLocked(userCode string, now time.Time) (*deviceGrant, error) {
	g, ok := p.grants.byUser[normalizeUserCode(userCode)]
	if !ok || !now.Before(g.expires) || g.state != grantPending {
		return nil, errorf(ErrUnknownUserCode, nil, "no pending request for this code")
	}
	return g, nil
}

// PendingDevice returns what the human is asked to approve for userCode.
func (p *Provisioner) PendingDevice(ctx context.Context, userCode string) (*PendingLink, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.grants.mu.Lock()
	defer p.grants.mu.Unlock()
	g, err := p.pendingLocked(userCode, p.now.Now())
	if err != nil {
		return nil, err
	}
	return &PendingLink{
		UserCode: g.userCode, ClientID: g.clientID, User: g.user,
		Email: g.att.Email, Name: g.att.Name, Service: g.att.Service, Project: g.att.Project,
		ExpiresAt: g.expires,
	}, nil
}

// ApproveDevice records that the provider's signed-in user, owner of
// accountID, approved linking the pending request of userCode. Call it only
// after authenticating that user in the provider's own UI; the link itself
// is made when the client next polls.
func (p *Provisioner) ApproveDevice(ctx context.Context, userCode, accountID string) error {
	if accountID == "" {
		return errorf(ErrInvalidRequest, nil, "account id is required")
	}
	return p.decideDevice(ctx, userCode, grantApproved, accountID)
}

// DenyDevice records that the human refused the request of userCode.
func (p *Provisioner) DenyDevice(ctx context.Context, userCode string) error {
	return p.decideDevice(ctx, userCode, grantDenied, "")
}

func (p *Provisioner) decideDevice(ctx context.Context, userCode string, st grantState, accountID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.grants.mu.Lock()
	defer p.grants.mu.Unlock()
	g, err := p.pendingLocked(userCode, p.now.Now())
	if err != nil {
		return err
	}
	g.state, g.accountID = st, accountID
	return nil
}

// exchangeDeviceCode answers one poll of the RFC 8628 §3.4 token request.
func (p *Provisioner) exchangeDeviceCode(ctx context.Context, form url.Values) (*TokenResponse, error) {
	clientID, device := form.Get("client_id"), form.Get("device_code")
	if clientID == "" || device == "" {
		return nil, errorf(ErrInvalidRequest, nil, "client_id and device_code are required")
	}
	now := p.now.Now()
	p.grants.mu.Lock()
	g, ok := p.grants.devices[codeKey(device)]
	if !ok || g.clientID != clientID {
		p.grants.mu.Unlock()
		return nil, errorf(ErrInvalidGrant, nil, "unknown device code")
	}
	if !now.Before(g.expires) {
		p.dropDeviceLocked(g)
		p.grants.mu.Unlock()
		return nil, errorf(ErrDeviceCodeExpired, nil, "device code expired")
	}
	// A poll sooner than three quarters of the interval is too fast; the
	// slack absorbs network jitter of well-behaved clients.
	if !g.lastPoll.IsZero() && now.Sub(g.lastPoll) < g.interval*3/4 {
		g.interval += 5 * time.Second
		g.lastPoll = now
		p.grants.mu.Unlock()
		return nil, errorf(ErrSlowDown, nil, "polling too fast; wait %d seconds", int64(g.interval/time.Second))
	}
	g.lastPoll = now
	switch g.state {
	case grantPending:
		p.grants.mu.Unlock()
		return nil, errorf(ErrAuthorizationPending, nil, "waiting for the user")
	case grantDenied:
		p.dropDeviceLocked(g)
		p.grants.mu.Unlock()
		return nil, errorf(ErrAccessDenied, nil, "the user denied the request")
	}
	// Approved: the code is consumed here, under the lock, so two
	// concurrent polls can never both receive a token.
	p.dropDeviceLocked(g)
	p.grants.mu.Unlock()
	scopes, err := p.grantScopes(g.att.Service, g.scope)
	if err != nil {
		return nil, err
	}
	return p.link(ctx, g.accountID, g.user, &g.att, scopes)
}

func (p *Provisioner) dropDeviceLocked(g *deviceGrant) {
	delete(p.grants.devices, g.deviceKey)
	delete(p.grants.byUser, g.userCode)
}

// link links user to accountID (compare-and-set) and issues a token.
func (p *Provisioner) link(ctx context.Context, accountID string, user UserRef, att *Attestation, scopes []string) (*TokenResponse, error) {
	linked, err := p.accounts.LinkSubject(ctx, accountID, user)
	switch {
	case errors.Is(err, ErrAlreadyLinked):
		return nil, errorf(ErrInvalidGrant, err, "this identity is already linked to another account")
	case errors.Is(err, ErrAccountNotFound):
		return nil, errorf(ErrInvalidGrant, err, "the approving account does not exist")
	case err != nil:
		return nil, errorf(ErrServerError, err, "account store unavailable")
	}
	if linked {
		p.log.Info("authz: identity linked after consent", "account_id", accountID, "iss", user.Issuer, "sub", user.Subject)
	}
	return p.issue(ctx, accountID, user, att, scopes, LinkExisting)
}

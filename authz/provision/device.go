package provision

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/oauthwire"
)

// Device-linking errors of the provider.
var (
	// ErrUnknownUserCode: ApproveDevice or DenyDevice got a user code that
	// is not pending (never issued, expired, already decided).
	ErrUnknownUserCode = &authz.Error{Code: "unknown_user_code", Status: http.StatusNotFound}
)

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

// codeKey is the store key of a device or authorization code: its hex
// SHA-256, so a leaked store does not reveal live codes.
func codeKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// maxGrantRetries bounds compare-and-set retries on one grant.
const maxGrantRetries = 8

// grantStoreError maps a grant store failure to the wire.
func grantStoreError(err error) *authz.Error {
	if errors.Is(err, ErrGrantStoreFull) {
		return errorf(authz.ErrTemporarilyUnavailable, err, "too many pending authorizations")
	}
	return errorf(authz.ErrTemporarilyUnavailable, err, "grant store unavailable")
}

// userCodeAlphabet avoids vowels (no words) and look-alike characters, as
// RFC 8628 §6.1 suggests.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

func newUserCode() string {
	out := make([]byte, 0, 9)
	var b [16]byte
	for len(out) < 9 {
		if _, err := rand.Read(b[:]); err != nil {
			panic("authz: crypto/rand failed: " + err.Error())
		}
		for _, c := range b {
			// Rejection sampling: 240 is the largest multiple of 20 below
			// 256, so every letter is equally likely.
			if c >= 240 || len(out) == 9 {
				continue
			}
			if len(out) == 4 {
				out = append(out, '-')
			}
			out = append(out, userCodeAlphabet[int(c)%len(userCodeAlphabet)])
		}
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
		oauthwire.WriteJSON(w, http.StatusOK, resp, "no-store")
	})
}

// StartDevice runs a device authorization request given its form
// parameters, as DeviceAuthorizationHandler does.
func (p *Provisioner) StartDevice(ctx context.Context, form url.Values) (*authz.DeviceAuthorizationResponse, error) {
	clientID := form.Get("client_id")
	if clientID == "" {
		return nil, errorf(authz.ErrInvalidRequest, nil, "client_id is required")
	}
	att, err := p.verifyAssertion(ctx, form.Get("assertion"))
	if err != nil {
		return nil, err
	}
	if att.Issuer != clientID {
		return nil, errorf(authz.ErrInvalidClient, nil, "client_id must be the attestation issuer")
	}
	scope := form.Get("scope")
	if _, err := p.grantScopes(att.Service, scope); err != nil {
		return nil, err
	}
	now := p.now.Now()
	device := newOpaqueCode()
	g := Grant{
		Key:       codeKey(device),
		Kind:      GrantDevice,
		ClientID:  clientID,
		User:      UserRef{Issuer: att.Issuer, Subject: att.Subject},
		Email:     att.Email,
		Name:      att.Name,
		Service:   att.Service,
		Project:   att.Project,
		Scope:     scope,
		ExpiresAt: now.Add(p.deviceTTL),
		Interval:  p.interval,
		State:     GrantPending,
	}
	// Retry on the rare user-code collision rather than overwrite.
	for attempt := 0; ; attempt++ {
		g.UserCode = newUserCode()
		err = p.grants.Put(ctx, g)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrGrantExists) || attempt == maxGrantRetries {
			return nil, grantStoreError(err)
		}
	}
	return &authz.DeviceAuthorizationResponse{
		DeviceCode:              device,
		UserCode:                g.UserCode,
		VerificationURI:         p.verifyURI,
		VerificationURIComplete: p.verifyURI + "?user_code=" + url.QueryEscape(g.UserCode),
		ExpiresIn:               int64(p.deviceTTL / time.Second),
		Interval:                wholeSeconds(p.interval),
	}, nil
}

// pending returns the live, undecided device grant of userCode.
func (p *Provisioner) pending(ctx context.Context, userCode string) (*Grant, error) {
	g, err := p.grants.GetByUserCode(ctx, normalizeUserCode(userCode))
	switch {
	case errors.Is(err, ErrGrantNotFound):
		return nil, errorf(ErrUnknownUserCode, nil, "no pending request for this code")
	case err != nil:
		return nil, grantStoreError(err)
	case g.Kind != GrantDevice || !p.now.Now().Before(g.ExpiresAt) || g.State != GrantPending:
		return nil, errorf(ErrUnknownUserCode, nil, "no pending request for this code")
	}
	return g, nil
}

// PendingDevice returns what the human is asked to approve for userCode.
func (p *Provisioner) PendingDevice(ctx context.Context, userCode string) (*PendingLink, error) {
	g, err := p.pending(ctx, userCode)
	if err != nil {
		return nil, err
	}
	return &PendingLink{
		UserCode: g.UserCode, ClientID: g.ClientID, User: g.User,
		Email: g.Email, Name: g.Name, Service: g.Service, Project: g.Project,
		ExpiresAt: g.ExpiresAt,
	}, nil
}

// ApproveDevice records that the provider's signed-in user, owner of
// accountID, approved linking the pending request of userCode. Call it only
// after authenticating that user in the provider's own UI; the link itself
// is made when the client next polls.
func (p *Provisioner) ApproveDevice(ctx context.Context, userCode, accountID string) error {
	if accountID == "" {
		return errorf(authz.ErrInvalidRequest, nil, "account id is required")
	}
	return p.decideDevice(ctx, userCode, GrantApproved, accountID)
}

// DenyDevice records that the human refused the request of userCode.
func (p *Provisioner) DenyDevice(ctx context.Context, userCode string) error {
	return p.decideDevice(ctx, userCode, GrantDenied, "")
}

func (p *Provisioner) decideDevice(ctx context.Context, userCode string, st GrantState, accountID string) error {
	for range maxGrantRetries {
		g, err := p.pending(ctx, userCode)
		if err != nil {
			return err
		}
		g.State, g.AccountID = st, accountID
		err = p.grants.Update(ctx, *g)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrGrantConflict) {
			return grantStoreError(err)
		}
	}
	return grantStoreError(ErrGrantConflict)
}

// exchangeDeviceCode answers one poll of the RFC 8628 §3.4 token request.
func (p *Provisioner) exchangeDeviceCode(ctx context.Context, form url.Values) (*authz.TokenResponse, error) {
	clientID, device := form.Get("client_id"), form.Get("device_code")
	if clientID == "" || device == "" {
		return nil, errorf(authz.ErrInvalidRequest, nil, "client_id and device_code are required")
	}
	key := codeKey(device)
	for range maxGrantRetries {
		g, err := p.grants.Get(ctx, key)
		switch {
		case errors.Is(err, ErrGrantNotFound):
			return nil, errorf(authz.ErrInvalidGrant, nil, "unknown device code")
		case err != nil:
			return nil, grantStoreError(err)
		case g.Kind != GrantDevice || g.ClientID != clientID:
			return nil, errorf(authz.ErrInvalidGrant, nil, "unknown device code")
		}
		now := p.now.Now()
		if !now.Before(g.ExpiresAt) {
			_, _ = p.grants.Delete(ctx, key)
			return nil, errorf(authz.ErrDeviceCodeExpired, nil, "device code expired")
		}
		var answer *authz.Error
		switch {
		// A poll sooner than three quarters of the interval is too fast;
		// the slack absorbs network jitter of well-behaved clients.
		case !g.LastPoll.IsZero() && now.Sub(g.LastPoll) < g.Interval*3/4:
			g.Interval += 5 * time.Second
			answer = errorf(authz.ErrSlowDown, nil, "polling too fast; wait %d seconds", wholeSeconds(g.Interval))
			answer.RetryInterval = g.Interval
		case g.State == GrantPending:
			answer = errorf(authz.ErrAuthorizationPending, nil, "waiting for the user")
		case g.State == GrantDenied:
			if _, err := p.grants.Delete(ctx, key); err != nil {
				return nil, grantStoreError(err)
			}
			return nil, errorf(authz.ErrAccessDenied, nil, "the user denied the request")
		default:
			// Approved: only the caller whose Delete removes the grant
			// gets a token, so concurrent polls never both succeed.
			deleted, err := p.grants.Delete(ctx, key)
			if err != nil {
				return nil, grantStoreError(err)
			}
			if !deleted {
				return nil, errorf(authz.ErrInvalidGrant, nil, "device code already used")
			}
			scopes, err := p.grantScopes(g.Service, g.Scope)
			if err != nil {
				return nil, err
			}
			return p.link(ctx, g.AccountID, g.User, &authz.Attestation{Service: g.Service, Project: g.Project}, scopes)
		}
		g.LastPoll = now
		err = p.grants.Update(ctx, *g)
		if err == nil {
			return nil, answer
		}
		if !errors.Is(err, ErrGrantConflict) {
			return nil, grantStoreError(err)
		}
	}
	return nil, grantStoreError(ErrGrantConflict)
}

// link links user to accountID (compare-and-set) and issues a token.
func (p *Provisioner) link(ctx context.Context, accountID string, user UserRef, att *authz.Attestation, scopes []string) (*authz.TokenResponse, error) {
	linked, err := p.accounts.LinkSubject(ctx, accountID, user)
	switch {
	case errors.Is(err, ErrAlreadyLinked):
		return nil, errorf(authz.ErrInvalidGrant, err, "this identity is already linked to another account")
	case errors.Is(err, ErrAccountNotFound):
		return nil, errorf(authz.ErrInvalidGrant, err, "the approving account does not exist")
	case err != nil:
		return nil, errorf(authz.ErrServerError, err, "account store unavailable")
	}
	if linked {
		p.log.Info("authz: identity linked after consent", "account_id", accountID, "iss", user.Issuer, "sub", user.Subject)
	}
	return p.issue(ctx, accountID, user, att, scopes, authz.LinkExisting)
}

// wholeSeconds rounds d up to whole seconds, as RFC 8628 intervals are.
func wholeSeconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }

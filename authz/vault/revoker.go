package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/oauthwire"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// Revocation limits at the orchestrator.
const (
	// maxAckBytes bounds the acknowledgement the orchestrator reads.
	maxAckBytes = 16 << 10
)

// Revocation errors of the orchestrator.
var (
	// ErrRevocationIncomplete: Revoke could not revoke every credential;
	// the report says which failed and why.
	ErrRevocationIncomplete = &authz.Error{Code: "revocation_incomplete", Status: http.StatusBadGateway}
	// ErrRevocationRejected: the provider refused a revocation event with
	// a 4xx answer; retrying the same request cannot help.
	ErrRevocationRejected = &authz.Error{Code: "revocation_rejected", Status: http.StatusBadGateway}
)

// RevocationTarget is where and to whom a provider's revocation events go.
type RevocationTarget struct {
	// Audience is the provider's attestation audience (its verifier's).
	Audience string
	// Endpoint is the provider's revocation event endpoint (the
	// agentprov_revocation_event_endpoint of its server metadata).
	Endpoint string
}

// RevocationTargets resolves a provider id to its revocation target.
type RevocationTargets interface {
	RevocationTarget(ctx context.Context, provider string) (RevocationTarget, error)
}

// StaticTargets is a fixed provider id → target map.
type StaticTargets map[string]RevocationTarget

// RevocationTarget implements RevocationTargets.
func (s StaticTargets) RevocationTarget(_ context.Context, provider string) (RevocationTarget, error) {
	t, ok := s[provider]
	if !ok {
		return RevocationTarget{}, fmt.Errorf("authz: no revocation target for provider %q", provider)
	}
	return t, nil
}

// RevokerOptions tune a Revoker. The zero value is safe.
type RevokerOptions struct {
	// MaxAttempts per credential; default 5.
	MaxAttempts int
	// InitialBackoff before the second attempt, doubled after each retry
	// up to MaxBackoff; defaults 200ms and 10s. Each wait is jittered
	// between half and all of the nominal delay.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Sleep waits d or until ctx is done; default a timer. Tests inject an
	// instant sleeper.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives per-credential outcomes; default slog.Default().
	Logger *slog.Logger
	// Subject, when set, names the user of a credential at its provider
	// (typically PairwiseSubject of the project owner); it is sent as
	// "sub" so the provider also checks the account link. The vault does
	// not record subjects.
	Subject func(c *Credential) string
}

// RevokeRequest selects the vault credentials to revoke.
type RevokeRequest struct {
	// Project is required.
	Project string
	// Provider, when set, limits revocation to that provider.
	Provider string
}

// RevocationResult is the outcome for one credential.
type RevocationResult struct {
	Provider  string
	Service   string
	AccountID string
	// Revoked is true once the provider acknowledged and the credential
	// was deleted from the vault.
	Revoked bool
	// Attempts counts the events sent.
	Attempts int
	// Err says why it failed; nil when Revoked.
	Err error
}

// RevocationReport lists the outcome per credential, in vault order.
type RevocationReport struct {
	Project string
	Results []RevocationResult
}

// Failed returns the results that did not revoke.
func (r *RevocationReport) Failed() []RevocationResult {
	var out []RevocationResult
	for _, x := range r.Results {
		if !x.Revoked {
			out = append(out, x)
		}
	}
	return out
}

// Revoker is the orchestrator side of revocation: it tells providers to
// revoke the tokens held in the vault, then forgets them. It is safe for
// concurrent use.
type Revoker struct {
	attester *authz.Attester
	vault    *Vault
	targets  RevocationTargets
	client   *http.Client
	attempts int
	backoff  time.Duration
	maxWait  time.Duration
	sleep    func(context.Context, time.Duration) error
	log      *slog.Logger
	subject  func(*Credential) string
}

// NewRevoker returns a Revoker signing events with attester, reading and
// deleting credentials in vault and finding providers through targets.
// client may be nil for http.DefaultClient; it is never modified.
func NewRevoker(attester *authz.Attester, vault *Vault, targets RevocationTargets, client *http.Client, opts *RevokerOptions) (*Revoker, error) {
	switch {
	case attester == nil:
		return nil, errors.New("authz: revoker: attester is required")
	case vault == nil:
		return nil, errors.New("authz: revoker: vault is required")
	case targets == nil:
		return nil, errors.New("authz: revoker: revocation targets are required")
	}
	if opts == nil {
		opts = &RevokerOptions{}
	}
	r := &Revoker{
		attester: attester, vault: vault, targets: targets, client: oauthwire.SafeClient(client),
		attempts: opts.MaxAttempts, backoff: opts.InitialBackoff, maxWait: opts.MaxBackoff,
		sleep: opts.Sleep, log: opts.Logger, subject: opts.Subject,
	}
	if r.attempts <= 0 {
		r.attempts = 5
	}
	if r.backoff <= 0 {
		r.backoff = 200 * time.Millisecond
	}
	if r.maxWait <= 0 {
		r.maxWait = 10 * time.Second
	}
	if r.sleep == nil {
		r.sleep = sleepCtx
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Revoke revokes every credential of req.Project (at req.Provider only, if
// set): for each, it sends a signed revocation event to the provider,
// retrying network failures, 429 and 5xx answers with backoff up to
// MaxAttempts, and deletes the credential from the vault once the provider
// acknowledged. A 4xx answer is final. The report covers every credential;
// the error is ErrRevocationIncomplete when any failed, or the vault's error
// when the credentials could not be listed.
func (r *Revoker) Revoke(ctx context.Context, req RevokeRequest) (*RevocationReport, error) {
	creds, err := r.vault.List(ctx, req.Project, req.Provider)
	if err != nil {
		return nil, err
	}
	rep := &RevocationReport{Project: req.Project}
	failed := 0
	for i := range creds {
		c := &creds[i]
		res := RevocationResult{Provider: c.Provider, Service: c.Service, AccountID: c.AccountID}
		res.Attempts, res.Err = r.revokeOne(ctx, c)
		if res.Err == nil {
			if err := r.vault.Delete(ctx, c.Project, c.Ref()); err != nil && !errors.Is(err, ErrCredentialNotFound) {
				res.Err = fmt.Errorf("authz: revoked at provider but vault delete failed: %w", err)
			}
		}
		res.Revoked = res.Err == nil
		if !res.Revoked {
			failed++
			r.log.Warn("authz: revocation failed", "project", c.Project, "ref", c.Ref(), "attempts", res.Attempts, "err", res.Err)
		}
		rep.Results = append(rep.Results, res)
	}
	if failed > 0 {
		return rep, errorf(ErrRevocationIncomplete, nil, "%d of %d credentials not revoked", failed, len(creds))
	}
	return rep, nil
}

// revokeOne sends the event for c until acknowledged, returning attempts.
func (r *Revoker) revokeOne(ctx context.Context, c *Credential) (int, error) {
	target, err := r.targets.RevocationTarget(ctx, c.Provider)
	if err != nil {
		return 0, err
	}
	if _, err := safehttp.CheckURL(target.Endpoint); err != nil {
		return 0, err
	}
	ev := authz.RevocationEvent{
		Audience:  target.Audience,
		AccountID: c.AccountID,
		Project:   c.Project,
		Service:   c.Ref(),
	}
	if r.subject != nil {
		ev.Subject = r.subject(c)
	}
	for _, s := range []Secret{c.AccessToken, c.RefreshToken} {
		if s != "" {
			ev.TokenHashes = append(ev.TokenHashes, authz.HashToken(s.Reveal()).String())
		}
	}
	wait := r.backoff
	var last error
	for attempt := 1; attempt <= r.attempts; attempt++ {
		if attempt > 1 {
			d := wait/2 + rand.N(wait/2+1)
			if err := r.sleep(ctx, d); err != nil {
				return attempt - 1, fmt.Errorf("authz: revocation interrupted: %w (last error: %v)", err, last)
			}
			wait = min(2*wait, r.maxWait)
		}
		// A fresh event (new jti) per attempt: the provider consumes jti
		// even when our read of its answer failed.
		jwt, err := r.attester.Sign(ctx, authz.TypeRevocation, ev)
		if err != nil {
			return attempt, err
		}
		retry, err := r.send(ctx, target.Endpoint, jwt)
		if err == nil {
			return attempt, nil
		}
		if !retry {
			return attempt, err
		}
		last = err
	}
	return r.attempts, fmt.Errorf("authz: provider did not acknowledge after %d attempts: %w", r.attempts, last)
}

// send posts one event; retry reports whether the failure is transient.
func (r *Revoker) send(ctx context.Context, endpoint, jwt string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(jwt))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/jwt")
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	body, rerr := safehttp.ReadAll(resp.Body, maxAckBytes)
	switch {
	case resp.StatusCode == http.StatusOK:
		if rerr != nil {
			return true, rerr
		}
		var ack authz.RevocationAck
		if err := json.Unmarshal(body, &ack); err != nil {
			return true, fmt.Errorf("authz: malformed acknowledgement: %w", err)
		}
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("authz: provider answered %d", resp.StatusCode)
	default:
		detail := fmt.Sprintf("provider answered %d", resp.StatusCode)
		if pd := problem.Read(io.LimitReader(strings.NewReader(string(body)), maxAckBytes), maxAckBytes); pd != nil {
			detail += " " + pd.Code
		}
		return false, errorf(ErrRevocationRejected, nil, "%s", detail)
	}
}

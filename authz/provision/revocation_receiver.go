package provision

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/oauthwire"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// Revocation limits at the provider.
const (
	// maxRevocationBody bounds an event (a compact JWS) at the provider.
	maxRevocationBody = 16 << 10
	// maxRevocationHashes bounds the token hashes of one event.
	maxRevocationHashes = 100
)

// Revocation errors of the provider.
var (
	// ErrInvalidRevocation: a revocation event is well signed but its
	// claims are unusable (no account_id, bad token hash, too many hashes).
	ErrInvalidRevocation = &authz.Error{Code: "invalid_revocation", Status: http.StatusBadRequest}
)

// RevokeHandler serves the RFC 7009 token revocation endpoint: a holder of
// a token revokes it by presenting it. The answer is 200 whether or not the
// token was known (RFC 7009 §2.2).
func (p *Provisioner) RevokeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, err := readForm(w, r)
		if err != nil {
			p.writeOAuthError(w, err)
			return
		}
		token := form.Get("token")
		if token == "" {
			p.writeOAuthError(w, errorf(authz.ErrInvalidRequest, nil, "token is required"))
			return
		}
		h := authz.HashToken(token)
		t, err := p.tokens.Lookup(r.Context(), h)
		if err == nil {
			_, err = p.tokens.Revoke(r.Context(), h, t.User.Issuer, p.now.Now().UTC())
		}
		if err != nil && !errors.Is(err, ErrTokenNotFound) {
			p.writeOAuthError(w, errorf(authz.ErrTemporarilyUnavailable, err, "token store unavailable"))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	})
}

// RevocationEventHandler serves the revocation event endpoint: POST with
// Content-Type application/jwt and a signed RevocationEvent as the body. It
// verifies the event (typ, signature by a trusted orchestrator, aud, time,
// single-use jti), revokes the named tokens of that orchestrator
// idempotently and answers 200 with a RevocationAck. Errors are problem+json.
func (p *Provisioner) RevocationEventHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			problem.Write(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
			return
		}
		if !checkVersion(w, r) {
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/jwt" {
			problem.Write(w, http.StatusUnsupportedMediaType, authz.ErrInvalidRequest.Code, "content type must be application/jwt")
			return
		}
		body, err := safehttp.ReadAll(r.Body, maxRevocationBody)
		if errors.Is(err, safehttp.ErrTooLarge) {
			problem.Write(w, http.StatusRequestEntityTooLarge, authz.ErrInvalidRequest.Code, "event too large")
			return
		}
		if err != nil {
			problem.Write(w, http.StatusBadRequest, authz.ErrInvalidRequest.Code, "could not read the event")
			return
		}
		n, err := p.HandleRevocation(r.Context(), strings.TrimSpace(string(body)))
		if err != nil {
			if e := authz.AsError(err); e != nil && e.Status >= 500 {
				p.log.Error("authz: revocation failed", "code", e.Code, "err", e.Err)
			}
			writeProblem(w, err)
			return
		}
		oauthwire.WriteJSON(w, http.StatusOK, authz.RevocationAck{ProtocolVersion: "0.1", Revoked: n}, "no-store")
	})
}

// HandleRevocation verifies a revocation event and revokes its tokens,
// returning how many live tokens it revoked. It is what
// RevocationEventHandler runs for each request. The event's content
// (account_id, token_hashes, the sub link) is checked before its jti is
// consumed, so only an event that is acted on spends its id.
func (p *Provisioner) HandleRevocation(ctx context.Context, event string) (int, error) {
	var ev authz.RevocationEvent
	var hashes []authz.TokenHash
	// The content is checked before the jti is consumed, so an event
	// refused as invalid_revocation (or for an unavailable account store)
	// does not burn its id; only an event that will be acted on does.
	check := func() error {
		var err error
		hashes, err = p.checkRevocation(ctx, &ev)
		return err
	}
	if err := p.verifier.VerifyTypedFunc(ctx, event, authz.TypeRevocation, &ev, check); err != nil {
		if authz.AsError(err) == nil {
			return 0, errorf(authz.ErrTemporarilyUnavailable, err, "event could not be checked")
		}
		return 0, err
	}
	now := p.now.Now().UTC()
	if len(hashes) == 0 {
		n, err := p.tokens.RevokeAccount(ctx, ev.AccountID, ev.Issuer, now)
		if err != nil {
			return 0, errorf(authz.ErrTemporarilyUnavailable, err, "token store unavailable")
		}
		return n, nil
	}
	n := 0
	for _, h := range hashes {
		t, err := p.tokens.Lookup(ctx, h)
		if errors.Is(err, ErrTokenNotFound) || (err == nil && t.AccountID != ev.AccountID) {
			continue // unknown or someone else's: silently nothing to do
		}
		if err != nil {
			return n, errorf(authz.ErrTemporarilyUnavailable, err, "token store unavailable")
		}
		ok, err := p.tokens.Revoke(ctx, h, ev.Issuer, now)
		if err != nil {
			return n, errorf(authz.ErrTemporarilyUnavailable, err, "token store unavailable")
		}
		if ok {
			n++
		}
	}
	p.log.Info("authz: tokens revoked by event", "account_id", ev.AccountID, "iss", ev.Issuer, "revoked", n)
	return n, nil
}

// checkRevocation validates a verified event's content — account_id,
// token hashes, and the link of sub to the account — and returns the
// parsed hashes. It only reads.
func (p *Provisioner) checkRevocation(ctx context.Context, ev *authz.RevocationEvent) ([]authz.TokenHash, error) {
	if ev.AccountID == "" {
		return nil, errorf(ErrInvalidRevocation, nil, "account_id is required")
	}
	if len(ev.TokenHashes) > maxRevocationHashes {
		return nil, errorf(ErrInvalidRevocation, nil, "at most %d token hashes per event", maxRevocationHashes)
	}
	hashes := make([]authz.TokenHash, 0, len(ev.TokenHashes))
	for _, s := range ev.TokenHashes {
		h, err := authz.ParseTokenHash(s)
		if err != nil {
			return nil, errorf(ErrInvalidRevocation, nil, "token_hashes holds a malformed hash")
		}
		hashes = append(hashes, h)
	}
	if ev.Subject != "" {
		acct, err := p.accounts.FindBySubject(ctx, UserRef{Issuer: ev.Issuer, Subject: ev.Subject})
		switch {
		case errors.Is(err, ErrAccountNotFound) || (err == nil && acct.ID != ev.AccountID):
			return nil, errorf(ErrInvalidRevocation, nil, "account is not linked to this subject")
		case err != nil:
			return nil, errorf(authz.ErrTemporarilyUnavailable, err, "account store unavailable")
		}
	}
	return hashes, nil
}

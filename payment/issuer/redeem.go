package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
	"github.com/agentprov/agentprov/payment"
)

// Redeem is the redemption core, without HTTP: provider (already
// authenticated) redeems token for actual. The first successful redemption
// of a token records it, commits the budget hold for actual and settles it
// on the Rail; every later call with the same amount returns the same
// receipt (exactly once whatever the retries, concurrency or crashes),
// while a different amount fails with ErrAlreadyRedeemed.
//
// The receipt's State is StateSettled when the rail confirmed the charge
// and StateSettling while the outbox is still trying; ErrSettlementRefused
// reports a definitive refusal (the spend was reversed).
func (i *Issuer) Redeem(ctx context.Context, provider, token string, actual budget.Money) (*payment.Receipt, error) {
	// exp is checked below, where a redemption begins: the replay of a
	// finished one answers its outcome even after exp (§5.2.1 steps 4-5).
	at := payment.TokenTime{Now: i.now.Now(), Leeway: i.leeway}
	claims, err := payment.VerifyToken(token, i.jwks, i.issuer, provider, at)
	if err != nil {
		return nil, err
	}
	if err := paywire.CheckMoney(actual); err != nil || actual.Amount == 0 {
		return nil, payment.ErrInvalidAmount.With(nil, "amount must be a positive integer with an ISO 4217 currency")
	}
	for {
		rec, err := i.store.Get(ctx, claims.HoldID)
		if errors.Is(err, payment.ErrNotFound) {
			return nil, payment.ErrTokenInvalid.With(nil, "unknown token")
		}
		if err != nil {
			return nil, storeErr(err)
		}
		if rec.Provider != claims.Audience || rec.Service != claims.Service || rec.MaxAmount != claims.MaxAmount {
			return nil, payment.ErrTokenInvalid.With(nil, "token does not match its record")
		}
		switch rec.State {
		case payment.StateIssued:
			now := i.now.Now()
			if !now.Before(rec.ExpiresAt.Add(i.leeway)) {
				return nil, payment.ErrTokenExpired.With(nil, "expired at %s", rec.ExpiresAt.Format(time.RFC3339))
			}
			// The token presented, not only its record, must be current.
			if err := (payment.TokenTime{Now: now, Leeway: i.leeway, CheckExp: true}).Check(claims); err != nil {
				return nil, err
			}
			if actual.Currency != rec.MaxAmount.Currency {
				return nil, payment.ErrCurrencyMismatch.With(nil, "token is in %s, amount in %s", rec.MaxAmount.Currency, actual.Currency)
			}
			if actual.Amount > rec.MaxAmount.Amount {
				return nil, payment.ErrAmountExceedsMax.With(nil, "%s is above the token's maximum of %s", actual, rec.MaxAmount)
			}
			next := rec
			next.State, next.Amount = payment.StatePending, actual
			next.RedeemedAt = now.UTC().Truncate(time.Second)
			next.NextAttemptAt = now.Add(i.lease())
			if err := i.update(ctx, &next); errors.Is(err, payment.ErrConflict) {
				continue // a concurrent redemption or revocation won; look again
			} else if err != nil {
				return nil, err
			}
			rec, err = i.advance(ctx, next, true)
			return i.result(rec, err)
		case payment.StateRevoking, payment.StateRevoked:
			if rec.Reason == "expired" {
				return nil, payment.ErrTokenExpired.With(nil, "expired at %s", rec.ExpiresAt.Format(time.RFC3339))
			}
			return nil, payment.ErrTokenRevoked
		case payment.StateVoid:
			return nil, payment.ErrTokenExpired.With(nil, "the hold ended before the redemption committed")
		default:
			if rec.Amount != actual {
				return nil, payment.ErrAlreadyRedeemed.With(nil, "redeemed before for %s", rec.Amount)
			}
			rec, err = i.advance(ctx, rec, false)
			return i.result(rec, err)
		}
	}
}

// result turns a record after advance into Redeem's answer. A transient
// failure after the commit is not an error for the provider: the receipt
// stands and the outbox finishes the settlement.
func (i *Issuer) result(rec Redemption, err error) (*payment.Receipt, error) {
	switch rec.State {
	case payment.StateCommitted, payment.StateSettling, payment.StateSettled:
		r := i.receiptOf(rec)
		return &r, nil
	case payment.StateRefused, payment.StateReversed:
		return nil, payment.ErrSettlementRefused
	case payment.StateVoid:
		return nil, payment.ErrTokenExpired.With(nil, "the hold ended before the redemption committed")
	}
	if err != nil && !errors.Is(err, payment.ErrConflict) {
		return nil, payment.ErrRedemptionInFlight.With(err, "the redemption is recorded; its commit will be retried")
	}
	return nil, payment.ErrRedemptionInFlight
}

func (i *Issuer) receiptOf(rec Redemption) payment.Receipt {
	return payment.Receipt{
		Issuer: i.issuer, HoldID: rec.HoldID, Amount: rec.Amount, Provider: rec.Provider,
		Service: rec.Service, Project: rec.Project, RedeemedAt: rec.RedeemedAt.UTC(),
		Signed: rec.Receipt, State: rec.State, Reference: rec.Reference,
	}
}

// ProviderAuthenticator identifies the provider calling the redemption
// endpoint from its request (an API key, mTLS, a signed request…). It
// returns the provider id or an error; it must be safe for concurrent use.
type ProviderAuthenticator func(r *http.Request) (providerID string, err error)

// BearerAuthenticator authenticates providers by "Authorization: Bearer
// <api key>", with keys mapping provider id to the key the orchestrator
// registered for it. Keys are compared in constant time through their
// SHA-256 digests and never logged. The returned function is safe for
// concurrent use; keys is copied.
func BearerAuthenticator(keys map[string]string) ProviderAuthenticator {
	type entry struct {
		provider string
		digest   [32]byte
	}
	entries := make([]entry, 0, len(keys))
	for p, k := range keys {
		if k != "" {
			entries = append(entries, entry{p, sha256.Sum256([]byte(k))})
		}
	}
	return func(r *http.Request) (string, error) {
		scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
			return "", payment.ErrUnauthorized
		}
		d := sha256.Sum256([]byte(cred))
		found := ""
		for _, e := range entries {
			if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
				found = e.provider
			}
		}
		if found == "" {
			return "", payment.ErrUnauthorized
		}
		return found, nil
	}
}

type providerKey struct{}

func providerFrom(ctx context.Context) string {
	p, _ := ctx.Value(providerKey{}).(string)
	return p
}

// RedemptionHandler returns the orchestrator's redemption endpoint (§5.2).
// Mount it at the endpoint path P and at P + "/":
//
//	POST P                      redeem a token (Idempotency-Key required)
//	GET  P/{hold_id}            the redemption's current state and receipt
//	POST P/{hold_id}/release    give an unredeemed token's hold back (Idempotency-Key required)
//
// Providers are authenticated with IssuerOptions.Authenticate; the POSTs
// are wrapped in the Idempotent middleware keyed per provider. The handler
// is safe for concurrent use.
func (i *Issuer) RedemptionHandler() http.Handler {
	idem := payment.Idempotent(i.idem, &payment.IdempotencyOptions{Now: i.now, Logger: i.log,
		Identity: func(r *http.Request) string { return providerFrom(r.Context()) }})
	post := idem(http.HandlerFunc(i.serveRedeem))
	release := idem(http.HandlerFunc(i.serveRelease))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i.auth == nil {
			payment.WriteErr(w, payment.ErrUnauthorized.With(nil, "no provider authentication configured"))
			return
		}
		provider, err := i.auth(r)
		if err != nil || !paywire.ValidProvider(provider) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentprov-redemption"`)
			payment.WriteErr(w, payment.ErrUnauthorized)
			return
		}
		if v := r.Header.Get("Agent-Provisioning-Version"); v != "" && !paywire.MajorOK(v) {
			problem.Write(w, http.StatusBadRequest, "unsupported_version", "this endpoint implements protocol version 0.x")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), providerKey{}, provider))
		switch r.Method {
		case http.MethodPost:
			if strings.HasSuffix(r.URL.Path, paywire.ReleaseSuffix) {
				release.ServeHTTP(w, r)
				return
			}
			post.ServeHTTP(w, r)
		case http.MethodGet:
			i.serveStatus(w, r, provider)
		default:
			w.Header().Set("Allow", "GET, POST")
			problem.Write(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST to redeem or release, GET to read a redemption")
		}
	})
}

func (i *Issuer) serveRedeem(w http.ResponseWriter, r *http.Request) {
	body, err := safehttp.ReadAll(r.Body, payment.MaxRedemptionRequestSize)
	if err != nil {
		payment.WriteErr(w, payment.ErrInvalidRequest.With(nil, "body unreadable or longer than %d bytes", payment.MaxRedemptionRequestSize))
		return
	}
	req, err := payment.ParseRedemptionRequest(body)
	if err != nil {
		payment.WriteErr(w, err)
		return
	}
	rc, err := i.Redeem(r.Context(), providerFrom(r.Context()), req.Token, req.Amount)
	if err != nil {
		payment.WriteErr(w, err)
		return
	}
	status := http.StatusOK
	if rc.State != payment.StateSettled {
		status = http.StatusAccepted
	}
	writeJSON(w, status, payment.ViewOf(*rc))
}

func (i *Issuer) serveRelease(w http.ResponseWriter, r *http.Request) {
	id := path.Base(strings.TrimSuffix(r.URL.Path, paywire.ReleaseSuffix))
	body, err := safehttp.ReadAll(r.Body, payment.MaxRedemptionRequestSize)
	if err != nil {
		payment.WriteErr(w, payment.ErrInvalidRequest.With(nil, "body unreadable or longer than %d bytes", payment.MaxRedemptionRequestSize))
		return
	}
	req, err := payment.ParseReleaseRequest(body)
	if err != nil {
		payment.WriteErr(w, err)
		return
	}
	// The path names the hold; it must be the token's, so that a request
	// cannot release one hold while showing the token of another.
	if c, err := payment.ParseTokenClaims(req.Token); err != nil || c.HoldID != id {
		payment.WriteErr(w, payment.ErrInvalidRequest.With(nil, "token does not belong to hold %q", id))
		return
	}
	provider := providerFrom(r.Context())
	if err := i.Release(r.Context(), provider, req.Token); err != nil {
		payment.WriteErr(w, err)
		return
	}
	rec, err := i.store.Get(r.Context(), id)
	if err != nil {
		payment.WriteErr(w, storeErr(err))
		return
	}
	writeJSON(w, http.StatusOK, payment.ViewOf(i.receiptOf(rec)))
}

func (i *Issuer) serveStatus(w http.ResponseWriter, r *http.Request, provider string) {
	id := path.Base(r.URL.Path)
	rec, err := i.store.Get(r.Context(), id)
	if errors.Is(err, payment.ErrNotFound) || (err == nil && rec.Provider != provider) {
		payment.WriteErr(w, payment.ErrNotFound) // another provider's redemption is not disclosed
		return
	}
	if err != nil {
		payment.WriteErr(w, storeErr(err))
		return
	}
	writeJSON(w, http.StatusOK, payment.ViewOf(i.receiptOf(rec)))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

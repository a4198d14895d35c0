package payment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// MaxRedemptionRequestSize bounds a redemption request body (bytes).
const MaxRedemptionRequestSize = 16 << 10

// maxRedemptionResponseSize bounds what the Redeemer reads back.
const maxRedemptionResponseSize = 64 << 10

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
func (i *Issuer) Redeem(ctx context.Context, provider, token string, actual budget.Money) (*Receipt, error) {
	// exp is checked below, where a redemption begins: the replay of a
	// finished one answers its outcome even after exp (§5.2.1 steps 4-5).
	at := tokenTime{now: i.now.Now(), leeway: i.leeway}
	claims, err := verifyToken(token, i.jwks, i.issuer, provider, at)
	if err != nil {
		return nil, err
	}
	if err := checkMoney(actual); err != nil || actual.Amount == 0 {
		return nil, ErrInvalidAmount.with(nil, "amount must be a positive integer with an ISO 4217 currency")
	}
	for {
		rec, err := i.store.Get(ctx, claims.HoldID)
		if errors.Is(err, ErrNotFound) {
			return nil, ErrTokenInvalid.with(nil, "unknown token")
		}
		if err != nil {
			return nil, storeErr(err)
		}
		if rec.Provider != claims.Audience || rec.Service != claims.Service || rec.MaxAmount != claims.MaxAmount {
			return nil, ErrTokenInvalid.with(nil, "token does not match its record")
		}
		switch rec.State {
		case StateIssued:
			now := i.now.Now()
			if !now.Before(rec.ExpiresAt.Add(i.leeway)) {
				return nil, ErrTokenExpired.with(nil, "expired at %s", rec.ExpiresAt.Format(time.RFC3339))
			}
			// The token presented, not only its record, must be current.
			if err := (tokenTime{now: now, leeway: i.leeway, checkExp: true}).check(claims); err != nil {
				return nil, err
			}
			if actual.Currency != rec.MaxAmount.Currency {
				return nil, ErrCurrencyMismatch.with(nil, "token is in %s, amount in %s", rec.MaxAmount.Currency, actual.Currency)
			}
			if actual.Amount > rec.MaxAmount.Amount {
				return nil, ErrAmountExceedsMax.with(nil, "%s is above the token's maximum of %s", actual, rec.MaxAmount)
			}
			next := rec
			next.State, next.Amount = StatePending, actual
			next.RedeemedAt = now.UTC().Truncate(time.Second)
			next.NextAttemptAt = now.Add(i.lease())
			if err := i.update(ctx, &next); errors.Is(err, ErrConflict) {
				continue // a concurrent redemption or revocation won; look again
			} else if err != nil {
				return nil, err
			}
			rec, err = i.advance(ctx, next, true)
			return i.result(rec, err)
		case StateRevoking, StateRevoked:
			if rec.Reason == "expired" {
				return nil, ErrTokenExpired.with(nil, "expired at %s", rec.ExpiresAt.Format(time.RFC3339))
			}
			return nil, ErrTokenRevoked
		case StateVoid:
			return nil, ErrTokenExpired.with(nil, "the hold ended before the redemption committed")
		default:
			if rec.Amount != actual {
				return nil, ErrAlreadyRedeemed.with(nil, "redeemed before for %s", rec.Amount)
			}
			rec, err = i.advance(ctx, rec, false)
			return i.result(rec, err)
		}
	}
}

// result turns a record after advance into Redeem's answer. A transient
// failure after the commit is not an error for the provider: the receipt
// stands and the outbox finishes the settlement.
func (i *Issuer) result(rec Redemption, err error) (*Receipt, error) {
	switch rec.State {
	case StateCommitted, StateSettling, StateSettled:
		r := i.receiptOf(rec)
		return &r, nil
	case StateRefused, StateReversed:
		return nil, ErrSettlementRefused
	case StateVoid:
		return nil, ErrTokenExpired.with(nil, "the hold ended before the redemption committed")
	}
	if err != nil && !errors.Is(err, ErrConflict) {
		return nil, ErrRedemptionInFlight.with(err, "the redemption is recorded; its commit will be retried")
	}
	return nil, ErrRedemptionInFlight
}

func (i *Issuer) receiptOf(rec Redemption) Receipt {
	return Receipt{
		Issuer: i.issuer, HoldID: rec.HoldID, Amount: rec.Amount, Provider: rec.Provider,
		Service: rec.Service, Project: rec.Project, RedeemedAt: rec.RedeemedAt.UTC(),
		Signed: rec.Receipt, State: rec.State, Reference: rec.Reference,
	}
}

// RedemptionRequest is the body of POST to the redemption endpoint (§5.2).
// A plain value.
type RedemptionRequest struct {
	Token  string       `json:"token"`
	Amount budget.Money `json:"amount"`
}

// ParseRedemptionRequest decodes and checks a redemption request body.
// Errors match ErrInvalidRequest or ErrInvalidAmount.
func ParseRedemptionRequest(body []byte) (RedemptionRequest, error) {
	if len(body) > MaxRedemptionRequestSize {
		return RedemptionRequest{}, ErrInvalidRequest.with(nil, "body longer than %d bytes", MaxRedemptionRequestSize)
	}
	var raw struct {
		Token  *string `json:"token"`
		Amount *struct {
			Amount   *json.Number `json:"amount"`
			Currency *string      `json:"currency"`
		} `json:"amount"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return RedemptionRequest{}, ErrInvalidRequest.with(nil, "body is not a redemption request object")
	}
	if dec.More() {
		return RedemptionRequest{}, ErrInvalidRequest.with(nil, "trailing data after the JSON object")
	}
	if raw.Token == nil || *raw.Token == "" || len(*raw.Token) > MaxTokenSize {
		return RedemptionRequest{}, ErrInvalidRequest.with(nil, "token is missing or too long")
	}
	if raw.Amount == nil || raw.Amount.Amount == nil || raw.Amount.Currency == nil {
		return RedemptionRequest{}, ErrInvalidAmount.with(nil, "amount.amount and amount.currency are required")
	}
	n, err := raw.Amount.Amount.Int64()
	if err != nil || strings.ContainsAny(raw.Amount.Amount.String(), ".eE") {
		return RedemptionRequest{}, ErrInvalidAmount.with(nil, "amount.amount must be an integer in minor units")
	}
	m := budget.Money{Amount: n, Currency: *raw.Amount.Currency}
	if err := checkMoney(m); err != nil || n == 0 {
		return RedemptionRequest{}, ErrInvalidAmount.with(nil, "amount must be a positive integer with an ISO 4217 currency")
	}
	return RedemptionRequest{Token: *raw.Token, Amount: m}, nil
}

// redemptionView is the JSON body of a redemption resource (§5.2).
type redemptionView struct {
	Version    string          `json:"protocol_version"`
	HoldID     string          `json:"hold_id"`
	State      RedemptionState `json:"state"`
	Amount     *budget.Money   `json:"amount,omitempty"`
	Provider   string          `json:"provider"`
	Service    string          `json:"service"`
	Project    string          `json:"project"`
	RedeemedAt string          `json:"redeemed_at,omitempty"`
	Receipt    string          `json:"receipt,omitempty"`
	Reference  string          `json:"settlement_reference,omitempty"`
}

func viewOf(r Receipt) redemptionView {
	v := redemptionView{
		Version: ProtocolVersion, HoldID: r.HoldID, State: r.State, Provider: r.Provider,
		Service: r.Service, Project: r.Project, Receipt: r.Signed, Reference: r.Reference,
	}
	if r.Amount != (budget.Money{}) {
		v.Amount = &r.Amount
	}
	if !r.RedeemedAt.IsZero() {
		v.RedeemedAt = r.RedeemedAt.UTC().Format(time.RFC3339)
	}
	return v
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
			return "", ErrUnauthorized
		}
		d := sha256.Sum256([]byte(cred))
		found := ""
		for _, e := range entries {
			if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
				found = e.provider
			}
		}
		if found == "" {
			return "", ErrUnauthorized
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
	idem := Idempotent(i.idem, &IdempotencyOptions{Now: i.now, Logger: i.log,
		Identity: func(r *http.Request) string { return providerFrom(r.Context()) }})
	post := idem(http.HandlerFunc(i.serveRedeem))
	release := idem(http.HandlerFunc(i.serveRelease))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i.auth == nil {
			writeErr(w, ErrUnauthorized.with(nil, "no provider authentication configured"))
			return
		}
		provider, err := i.auth(r)
		if err != nil || !validProvider(provider) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentprov-redemption"`)
			writeErr(w, ErrUnauthorized)
			return
		}
		if v := r.Header.Get("Agent-Provisioning-Version"); v != "" && !majorOK(v) {
			problem.Write(w, http.StatusBadRequest, "unsupported_version", "this endpoint implements protocol version 0.x")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), providerKey{}, provider))
		switch r.Method {
		case http.MethodPost:
			if strings.HasSuffix(r.URL.Path, releaseSuffix) {
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
	body, err := safehttp.ReadAll(r.Body, MaxRedemptionRequestSize)
	if err != nil {
		writeErr(w, ErrInvalidRequest.with(nil, "body unreadable or longer than %d bytes", MaxRedemptionRequestSize))
		return
	}
	req, err := ParseRedemptionRequest(body)
	if err != nil {
		writeErr(w, err)
		return
	}
	rc, err := i.Redeem(r.Context(), providerFrom(r.Context()), req.Token, req.Amount)
	if err != nil {
		writeErr(w, err)
		return
	}
	status := http.StatusOK
	if rc.State != StateSettled {
		status = http.StatusAccepted
	}
	writeJSON(w, status, viewOf(*rc))
}

// releaseSuffix ends the path of the release operation (§5.2.3).
const releaseSuffix = "/release"

// ReleaseRequest is the body of POST {endpoint}/{hold_id}/release
// (§5.2.3): the token itself, so that only a holder of the token can
// release its hold. A plain value.
type ReleaseRequest struct {
	Token string `json:"token"`
}

// ParseReleaseRequest decodes and checks a release request body. Errors
// match ErrInvalidRequest.
func ParseReleaseRequest(body []byte) (ReleaseRequest, error) {
	if len(body) > MaxRedemptionRequestSize {
		return ReleaseRequest{}, ErrInvalidRequest.with(nil, "body longer than %d bytes", MaxRedemptionRequestSize)
	}
	var raw struct {
		Token *string `json:"token"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return ReleaseRequest{}, ErrInvalidRequest.with(nil, "body is not a release request object")
	}
	if dec.More() {
		return ReleaseRequest{}, ErrInvalidRequest.with(nil, "trailing data after the JSON object")
	}
	if raw.Token == nil || *raw.Token == "" || len(*raw.Token) > MaxTokenSize {
		return ReleaseRequest{}, ErrInvalidRequest.with(nil, "token is missing or too long")
	}
	return ReleaseRequest{Token: *raw.Token}, nil
}

func (i *Issuer) serveRelease(w http.ResponseWriter, r *http.Request) {
	id := path.Base(strings.TrimSuffix(r.URL.Path, releaseSuffix))
	body, err := safehttp.ReadAll(r.Body, MaxRedemptionRequestSize)
	if err != nil {
		writeErr(w, ErrInvalidRequest.with(nil, "body unreadable or longer than %d bytes", MaxRedemptionRequestSize))
		return
	}
	req, err := ParseReleaseRequest(body)
	if err != nil {
		writeErr(w, err)
		return
	}
	// The path names the hold; it must be the token's, so that a request
	// cannot release one hold while showing the token of another.
	if c, err := ParseTokenClaims(req.Token); err != nil || c.HoldID != id {
		writeErr(w, ErrInvalidRequest.with(nil, "token does not belong to hold %q", id))
		return
	}
	provider := providerFrom(r.Context())
	if err := i.Release(r.Context(), provider, req.Token); err != nil {
		writeErr(w, err)
		return
	}
	rec, err := i.store.Get(r.Context(), id)
	if err != nil {
		writeErr(w, storeErr(err))
		return
	}
	writeJSON(w, http.StatusOK, viewOf(i.receiptOf(rec)))
}

func (i *Issuer) serveStatus(w http.ResponseWriter, r *http.Request, provider string) {
	id := path.Base(r.URL.Path)
	rec, err := i.store.Get(r.Context(), id)
	if errors.Is(err, ErrNotFound) || (err == nil && rec.Provider != provider) {
		writeErr(w, ErrNotFound) // another provider's redemption is not disclosed
		return
	}
	if err != nil {
		writeErr(w, storeErr(err))
		return
	}
	writeJSON(w, http.StatusOK, viewOf(i.receiptOf(rec)))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeErr writes err as problem+json; errors that are not *Error become
// a 500 with no internal detail.
func writeErr(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		problem.Write(w, http.StatusInternalServerError, "internal_error", "")
		return
	}
	if e.Code == ErrRedemptionInFlight.Code || e.Code == ErrIdempotencyInFlight.Code || e.Code == ErrStore.Code {
		w.Header().Set("Retry-After", "1")
	}
	detail := e.Detail
	if e.Code == ErrStore.Code {
		detail = ErrStore.Detail // never leak store internals
	}
	problem.Write(w, e.Status, e.Code, detail)
}

// RedeemerOptions configure a Redeemer; they are read once by NewRedeemer.
type RedeemerOptions struct {
	// HTTPClient sends the requests; default http.DefaultClient. It is not
	// modified (redirects are refused on a copy).
	HTTPClient *http.Client
	// APIKey is sent as "Authorization: Bearer". It is never logged.
	APIKey string
	// Keys and Issuer, when both set, make Redeem verify the signed receipt
	// against the orchestrator's JWKS before returning it.
	Keys   *jose.JSONWebKeySet
	Issuer string
	// KeyResolver, with Issuer, makes Redeem verify the signed receipt
	// against the key its "kid" names, looked up per receipt, so that the
	// check follows the orchestrator's key rotation (an *authz.KeySet over
	// its JWKS URL implements it). It takes precedence over Keys.
	KeyResolver KeyResolver
}

// Format prints the options with APIKey redacted, whatever the verb.
func (o RedeemerOptions) Format(f fmt.State, _ rune) {
	key := ""
	if o.APIKey != "" {
		key = "[redacted]"
	}
	_, _ = fmt.Fprintf(f, "payment.RedeemerOptions{APIKey:%s Issuer:%q Keys:%t KeyResolver:%t}", key, o.Issuer, o.Keys != nil, o.KeyResolver != nil)
}

// Redeemer is the provider's client of an orchestrator's redemption
// endpoint. It is safe for concurrent use.
type Redeemer struct {
	endpoint string
	client   *http.Client
	apiKey   string
	keys     *jose.JSONWebKeySet
	resolver KeyResolver
	issuer   string
}

// String redacts the API key.
func (r *Redeemer) String() string { return fmt.Sprintf("payment.Redeemer{%s}", r.endpoint) }

// GoString redacts the API key for %#v.
func (r *Redeemer) GoString() string { return r.String() }

// NewRedeemer returns a client of the redemption endpoint URL, which must
// be https (or http on loopback).
func NewRedeemer(endpoint string, opts *RedeemerOptions) (*Redeemer, error) {
	u, err := safehttp.CheckURL(endpoint)
	if err != nil {
		return nil, fmt.Errorf("payment: redeemer: %w", err)
	}
	if opts == nil {
		opts = &RedeemerOptions{}
	}
	base := opts.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Redeemer{endpoint: strings.TrimSuffix(u.String(), "/"), client: &c, apiKey: opts.APIKey, keys: opts.Keys, resolver: opts.KeyResolver, issuer: opts.Issuer}, nil
}

// Redeem redeems token for actual with idempotencyKey (required; reuse it
// on every retry of this redemption). It returns the receipt (State tells
// whether settlement is confirmed) or an *Error carrying the
// orchestrator's code, comparable with the sentinels.
func (r *Redeemer) Redeem(ctx context.Context, token string, actual budget.Money, idempotencyKey string) (*Receipt, error) {
	if idempotencyKey == "" {
		return nil, ErrIdempotencyKeyRequired
	}
	body, err := json.Marshal(RedemptionRequest{Token: token, Amount: actual})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idempotencyKey)
	return r.do(req)
}

// Release tells the orchestrator that this provider will not redeem token
// (the paid work failed), so that its budget hold is released at once
// rather than at the token's expiry (§5.2.3). It is idempotent: releasing
// a token that is already released, revoked or expired gives nil. A token
// whose redemption has begun gives an error matching ErrAlreadyRedeemed,
// one addressed to another provider ErrForbidden. Release implements
// TokenReleaser.
func (r *Redeemer) Release(ctx context.Context, token string) error {
	c, err := ParseTokenClaims(token)
	if err != nil {
		return err
	}
	if c.HoldID == "" || strings.ContainsAny(c.HoldID, "/?#") {
		return ErrTokenInvalid.with(nil, "token has no usable hold id")
	}
	body, err := json.Marshal(ReleaseRequest{Token: token})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint+"/"+url.PathEscape(c.HoldID)+releaseSuffix, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	// One key per hold: every retry of this release is the same request.
	req.Header.Set("Idempotency-Key", "release:"+c.HoldID)
	_, err = r.do(req)
	return err
}

// Status reads the current state of the redemption of holdID.
func (r *Redeemer) Status(ctx context.Context, holdID string) (*Receipt, error) {
	if holdID == "" || strings.ContainsAny(holdID, "/?#") {
		return nil, ErrInvalidRequest.with(nil, "bad hold id")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.endpoint+"/"+url.PathEscape(holdID), nil)
	if err != nil {
		return nil, err
	}
	return r.do(req)
}

func (r *Redeemer) do(req *http.Request) (*Receipt, error) {
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Agent-Provisioning-Version", ProtocolVersion)
	if r.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+r.apiKey)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := safehttp.ReadAll(resp.Body, maxRedemptionResponseSize)
	if err != nil {
		return nil, ErrBadGateway.with(err, "reading the response")
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		if d := problem.Read(bytes.NewReader(data), maxRedemptionResponseSize); d != nil && d.Code != "" {
			return nil, &Error{Code: d.Code, Status: resp.StatusCode, Detail: d.Detail}
		}
		return nil, ErrBadGateway.with(nil, "status %d without a problem body", resp.StatusCode)
	}
	var v redemptionView
	if err := json.Unmarshal(data, &v); err != nil || v.HoldID == "" || !v.State.Valid() {
		return nil, ErrBadGateway.with(nil, "malformed redemption document")
	}
	rc := &Receipt{
		Issuer: r.issuer, HoldID: v.HoldID, Provider: v.Provider, Service: v.Service, Project: v.Project,
		Signed: v.Receipt, State: v.State, Reference: v.Reference,
	}
	if v.Amount != nil {
		rc.Amount = *v.Amount
	}
	if v.RedeemedAt != "" {
		rc.RedeemedAt, _ = time.Parse(time.RFC3339, v.RedeemedAt)
	}
	verify := (r.keys != nil || r.resolver != nil) && r.issuer != ""
	if verify && v.Receipt == "" {
		switch v.State {
		case StateCommitted, StateSettling, StateSettled:
			// These states exist only once the receipt is signed; without it
			// the payment cannot be checked.
			return nil, ErrBadGateway.with(nil, "%s redemption without a receipt", v.State)
		}
	}
	if verify && v.Receipt != "" {
		var vr *Receipt
		if r.resolver != nil {
			vr, err = VerifyReceiptWithResolver(req.Context(), v.Receipt, r.resolver, r.issuer)
		} else {
			vr, err = VerifyReceipt(v.Receipt, r.keys, r.issuer)
		}
		if err != nil {
			return nil, ErrBadGateway.with(err, "receipt does not verify")
		}
		if vr.HoldID != rc.HoldID || vr.Amount != rc.Amount || vr.Provider != rc.Provider {
			return nil, ErrBadGateway.with(nil, "receipt does not match the response")
		}
	}
	return rc, nil
}

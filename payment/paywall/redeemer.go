package paywall

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
	"github.com/agentprov/agentprov/payment"
)

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
	KeyResolver payment.KeyResolver
}

// Format prints the options with APIKey redacted, whatever the verb.
func (o RedeemerOptions) Format(f fmt.State, _ rune) {
	key := ""
	if o.APIKey != "" {
		key = "[redacted]"
	}
	_, _ = fmt.Fprintf(f, "paywall.RedeemerOptions{APIKey:%s Issuer:%q Keys:%t KeyResolver:%t}", key, o.Issuer, o.Keys != nil, o.KeyResolver != nil)
}

// Redeemer is the provider's client of an orchestrator's redemption
// endpoint. It is safe for concurrent use.
type Redeemer struct {
	endpoint string
	client   *http.Client
	apiKey   string
	keys     *jose.JSONWebKeySet
	resolver payment.KeyResolver
	issuer   string
}

// String redacts the API key.
func (r *Redeemer) String() string { return fmt.Sprintf("paywall.Redeemer{%s}", r.endpoint) }

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
func (r *Redeemer) Redeem(ctx context.Context, token string, actual budget.Money, idempotencyKey string) (*payment.Receipt, error) {
	if idempotencyKey == "" {
		return nil, payment.ErrIdempotencyKeyRequired
	}
	body, err := json.Marshal(payment.RedemptionRequest{Token: token, Amount: actual})
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
	c, err := payment.ParseTokenClaims(token)
	if err != nil {
		return err
	}
	if c.HoldID == "" || strings.ContainsAny(c.HoldID, "/?#") {
		return payment.ErrTokenInvalid.With(nil, "token has no usable hold id")
	}
	body, err := json.Marshal(payment.ReleaseRequest{Token: token})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint+"/"+url.PathEscape(c.HoldID)+paywire.ReleaseSuffix, bytes.NewReader(body))
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
func (r *Redeemer) Status(ctx context.Context, holdID string) (*payment.Receipt, error) {
	if holdID == "" || strings.ContainsAny(holdID, "/?#") {
		return nil, payment.ErrInvalidRequest.With(nil, "bad hold id")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.endpoint+"/"+url.PathEscape(holdID), nil)
	if err != nil {
		return nil, err
	}
	return r.do(req)
}

func (r *Redeemer) do(req *http.Request) (*payment.Receipt, error) {
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Agent-Provisioning-Version", payment.ProtocolVersion)
	if r.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+r.apiKey)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := safehttp.ReadAll(resp.Body, paywire.MaxRedemptionResponseSize)
	if err != nil {
		return nil, payment.ErrBadGateway.With(err, "reading the response")
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		if d := problem.Read(bytes.NewReader(data), paywire.MaxRedemptionResponseSize); d != nil && d.Code != "" {
			return nil, &payment.Error{Code: d.Code, Status: resp.StatusCode, Detail: d.Detail}
		}
		return nil, payment.ErrBadGateway.With(nil, "status %d without a problem body", resp.StatusCode)
	}
	var v payment.RedemptionView
	if err := json.Unmarshal(data, &v); err != nil || v.HoldID == "" || !v.State.Valid() {
		return nil, payment.ErrBadGateway.With(nil, "malformed redemption document")
	}
	rc := &payment.Receipt{
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
		case payment.StateCommitted, payment.StateSettling, payment.StateSettled:
			// These states exist only once the receipt is signed; without it
			// the payment cannot be checked.
			return nil, payment.ErrBadGateway.With(nil, "%s redemption without a receipt", v.State)
		}
	}
	if verify && v.Receipt != "" {
		var vr *payment.Receipt
		if r.resolver != nil {
			vr, err = payment.VerifyReceiptWithResolver(req.Context(), v.Receipt, r.resolver, r.issuer)
		} else {
			vr, err = payment.VerifyReceipt(v.Receipt, r.keys, r.issuer)
		}
		if err != nil {
			return nil, payment.ErrBadGateway.With(err, "receipt does not verify")
		}
		if vr.HoldID != rc.HoldID || vr.Amount != rc.Amount || vr.Provider != rc.Provider {
			return nil, payment.ErrBadGateway.With(nil, "receipt does not match the response")
		}
	}
	return rc, nil
}

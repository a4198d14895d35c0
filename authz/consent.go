package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentprov/agentprov/internal/safehttp"
)

// ConsentReceipt is a signed record that a human accepted a provider's terms:
// who (Subject, Email), which terms (Provider, TermsURL, TermsVersion), when
// (AcceptedAt) and through which agent (Agent). Human must be true: the
// protocol never lets an agent accept terms on its own, and the Attester
// refuses to sign a receipt without it.
//
// The orchestrator signs receipts with SignConsent and may carry one inside
// an attestation's "consent" claim; providers keep them as evidence.
type ConsentReceipt struct {
	// Issuer is set by the signing Attester; when non-empty on input it
	// must name that attester.
	Issuer  string
	Subject string
	Email   string
	// Provider is the provider whose terms were accepted; it is the
	// receipt's audience.
	Provider     string
	TermsURL     string
	TermsVersion string
	AcceptedAt   time.Time
	// Agent identifies the agent through which the human accepted.
	Agent string
	// Human records that the human, not the agent, accepted.
	Human bool
	// ID and IssuedAt are set when signing and reported when verifying.
	ID       string
	IssuedAt time.Time
}

// consentClaims is the wire form of a consent receipt's payload.
type consentClaims struct {
	Issuer       string `json:"iss"`
	Subject      string `json:"sub"`
	Audience     string `json:"aud"`
	Email        string `json:"email,omitempty"`
	TermsURL     string `json:"terms_url"`
	TermsVersion string `json:"terms_version"`
	AcceptedAt   int64  `json:"accepted_at"`
	Agent        string `json:"agent,omitempty"`
	Human        bool   `json:"human"`
	ID           string `json:"jti"`
	IssuedAt     int64  `json:"iat"`
}

// SignConsent signs a consent receipt (typ agentprov-consent+jwt). It
// refuses, with ErrHumanAcceptanceRequired, a receipt whose Human flag is
// false or whose AcceptedAt is zero or in the future.
func (a *Attester) SignConsent(ctx context.Context, r ConsentReceipt) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	now := a.now.Now()
	if !r.Human {
		return "", errorf(ErrHumanAcceptanceRequired, nil, "receipt is not marked as accepted by the human")
	}
	if r.AcceptedAt.IsZero() {
		return "", errorf(ErrHumanAcceptanceRequired, nil, "receipt has no acceptance time")
	}
	if r.AcceptedAt.After(now.Add(MaxLeeway)) {
		return "", errorf(ErrHumanAcceptanceRequired, nil, "acceptance time %s is in the future", r.AcceptedAt.UTC().Format(time.RFC3339))
	}
	if r.Issuer != "" && r.Issuer != a.issuer {
		return "", errorf(ErrInvalidRequest, nil, "receipt names issuer %q, not %q", r.Issuer, a.issuer)
	}
	if err := checkText("subject", r.Subject, 256, true); err != nil {
		return "", err
	}
	if err := checkText("provider", r.Provider, 256, true); err != nil {
		return "", err
	}
	if err := checkText("email", r.Email, 320, false); err != nil {
		return "", err
	}
	if err := checkText("terms version", r.TermsVersion, 128, true); err != nil {
		return "", err
	}
	if err := checkText("agent", r.Agent, 256, false); err != nil {
		return "", err
	}
	if err := checkTermsURL(r.TermsURL); err != nil {
		return "", err
	}
	id, err := a.newID()
	if err != nil {
		return "", err
	}
	c := consentClaims{
		Issuer:       a.issuer,
		Subject:      r.Subject,
		Audience:     r.Provider,
		Email:        r.Email,
		TermsURL:     r.TermsURL,
		TermsVersion: r.TermsVersion,
		AcceptedAt:   r.AcceptedAt.Unix(),
		Agent:        r.Agent,
		Human:        true,
		ID:           id,
		IssuedAt:     now.Unix(),
	}
	payload, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("authz: marshal consent receipt: %w", err)
	}
	return a.signPayload(TypeConsent, payload)
}

// checkTermsURL requires an absolute https URL, or http on a loopback host
// for development and tests (PROTOCOL §2.2): terms are shown to humans and
// kept as evidence, so nothing else is accepted.
func checkTermsURL(s string) error {
	if err := checkText("terms URL", s, 2048, true); err != nil {
		return err
	}
	if _, err := safehttp.CheckURL(s); err != nil {
		return errorf(ErrInvalidRequest, err, "terms URL %q must be an absolute https URL (or http on loopback)", s)
	}
	return nil
}

// VerifyConsent verifies a consent receipt addressed to the verifier's
// audience: signature, typ, trusted issuer, "aud", "iat" not in the future,
// "human": true and an acceptance time no later than issuance. Receipts are
// durable evidence, so VerifyConsent does not consume their "jti" and they
// carry no expiry; VerifierOptions.MaxConsentAge bounds their age if set.
func (v *Verifier) VerifyConsent(ctx context.Context, token string) (*ConsentReceipt, error) {
	var c consentClaims
	_, iss, claimsErr, err := v.verifySignature(ctx, token, TypeConsent, &c)
	if err != nil {
		return nil, err
	}
	if claimsErr != nil {
		return nil, claimsErr
	}
	return v.checkConsentClaims(&c, iss)
}

func (v *Verifier) checkConsentClaims(c *consentClaims, iss string) (*ConsentReceipt, error) {
	if c.Issuer != iss {
		return nil, errorf(ErrMalformedToken, nil, "issuer changed during verification")
	}
	if c.Audience != v.audience {
		return nil, errorf(ErrWrongAudience, nil, "consent receipt is for %q", c.Audience)
	}
	if c.Subject == "" || c.ID == "" || c.TermsURL == "" || c.TermsVersion == "" || c.IssuedAt == 0 {
		return nil, errorf(ErrMalformedToken, nil, "consent receipt lacks sub, jti, terms_url, terms_version or iat")
	}
	if !c.Human || c.AcceptedAt == 0 {
		return nil, errorf(ErrHumanAcceptanceRequired, nil, "consent receipt does not record a human acceptance")
	}
	now := v.now.Now()
	iat := time.Unix(c.IssuedAt, 0)
	if iat.After(now.Add(v.leeway)) {
		return nil, errorf(ErrTokenNotYetValid, nil, "consent receipt issued in the future")
	}
	if time.Unix(c.AcceptedAt, 0).After(iat.Add(v.leeway)) {
		return nil, errorf(ErrMalformedToken, nil, "consent accepted after the receipt was issued")
	}
	if v.maxConsentAge > 0 && now.Sub(iat) > v.maxConsentAge {
		return nil, errorf(ErrTokenExpired, nil, "consent receipt older than %v", v.maxConsentAge)
	}
	return &ConsentReceipt{
		Issuer:       c.Issuer,
		Subject:      c.Subject,
		Email:        c.Email,
		Provider:     c.Audience,
		TermsURL:     c.TermsURL,
		TermsVersion: c.TermsVersion,
		AcceptedAt:   time.Unix(c.AcceptedAt, 0).UTC(),
		Agent:        c.Agent,
		Human:        c.Human,
		ID:           c.ID,
		IssuedAt:     iat.UTC(),
	}, nil
}

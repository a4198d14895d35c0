package payment_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
)

// A paid handler fails: the Paywall's default releases the hold through
// the Redeemer at once — the budget is back to zero before the token
// expires, nothing is charged, and the record says why.
func TestE2E402HandlerFailureReleasesHold(t *testing.T) {
	w := newE2E(t, e2eConfig{})
	resp, _, err := w.get("/v1/fail")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d", resp.StatusCode)
	}
	w.wantMoney(0, 0, 0)
	c := w.lastUnset.Load()
	if c == nil {
		t.Fatal("OnUnsettled not called")
	}
	rec, err := w.iss.Redemption(context.Background(), c.HoldID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != payment.StateRevoked || rec.Reason != issuer.ReleaseReason {
		t.Fatalf("record %s (%q), want revoked (%q)", rec.State, rec.Reason, issuer.ReleaseReason)
	}
}

// KeepHoldOnFailure turns the release off: the hold stays until expiry.
func TestE2E402KeepHoldOnFailure(t *testing.T) {
	w := newE2E(t, e2eConfig{paywall: &paywall.PaywallOptions{Logger: quiet(), KeepHoldOnFailure: true}})
	if _, _, err := w.get("/v1/fail"); err != nil {
		t.Fatal(err)
	}
	held, _ := w.usage()
	if held == 0 {
		t.Fatal("hold released although KeepHoldOnFailure is set")
	}
	if rec, _ := w.iss.Redemption(context.Background(), w.lastUnset.Load().HoldID); rec.State != payment.StateIssued {
		t.Fatalf("record %s, want issued", rec.State)
	}
	w.wantMoney(held, 0, 0)
}

// A panicking handler is a failure too: its hold is released.
func TestPaywallHandlerPanicReleasesHold(t *testing.T) {
	w := newE2E(t, e2eConfig{})
	req, _ := http.NewRequest(http.MethodGet, w.provider.URL+"/v1/panic", nil)
	req.Header.Set("Authorization", w.pay("/v1/panic", nil))
	if resp, err := w.provider.Client().Do(req); err == nil {
		resp.Body.Close()
	}
	w.wantMoney(0, 0, 0)
}

func mintE2E(t *testing.T, w *e2e, provider, service string) string {
	t.Helper()
	m, err := w.iss.Mint(context.Background(), issuer.MintRequest{Project: e2eProject, Provider: provider, Service: service, MaxAmount: budget.USD(e2ePrice)})
	if err != nil {
		t.Fatal(err)
	}
	return m.Token
}

func TestRedeemerRelease(t *testing.T) {
	ctx := context.Background()
	w := newE2E(t, e2eConfig{})
	red := w.redeemer.(*paywall.Redeemer)

	t.Run("idempotent, then redemption refused", func(t *testing.T) {
		tok := mintE2E(t, w, e2eProvider, e2eService)
		for range 2 {
			if err := red.Release(ctx, tok); err != nil {
				t.Fatalf("Release: %v", err)
			}
		}
		if _, err := red.Redeem(ctx, tok, budget.USD(100), "k-released"); !errors.Is(err, payment.ErrTokenRevoked) {
			t.Fatalf("Redeem after Release = %v, want token_revoked", err)
		}
	})
	t.Run("after redemption: typed error, nothing changed", func(t *testing.T) {
		tok := mintE2E(t, w, e2eProvider, e2eService)
		rc, err := red.Redeem(ctx, tok, budget.USD(e2ePrice), "k-redeemed")
		if err != nil {
			t.Fatal(err)
		}
		before, _ := w.iss.Redemption(ctx, rc.HoldID)
		held0, committed0 := w.usage()
		railed0 := w.rail.Total("USD")
		err = red.Release(ctx, tok)
		var pe *payment.Error
		if !errors.Is(err, payment.ErrAlreadyRedeemed) || !errors.As(err, &pe) || pe.Status != http.StatusConflict {
			t.Fatalf("Release after Redeem = %v, want 409 already_redeemed", err)
		}
		after, _ := w.iss.Redemption(ctx, rc.HoldID)
		if after.State != before.State || after.Version != before.Version {
			t.Fatalf("record moved from %s v%d to %s v%d", before.State, before.Version, after.State, after.Version)
		}
		w.wantMoney(held0, committed0, railed0)
		if committed0 != e2ePrice || railed0 != e2ePrice {
			t.Fatalf("committed %d railed %d, want %d", committed0, railed0, e2ePrice)
		}
	})
	t.Run("only the audience provider", func(t *testing.T) {
		tok := mintE2E(t, w, "other-provider", "other-provider/api")
		if err := red.Release(ctx, tok); !errors.Is(err, payment.ErrForbidden) {
			t.Fatalf("Release of another provider's token = %v, want forbidden", err)
		}
		if err := w.iss.Release(ctx, "other-provider", tok); err != nil {
			t.Fatalf("its own provider: %v", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		if err := red.Release(ctx, "not-a-token"); !errors.Is(err, payment.ErrTokenInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
}

// The HTTP operation refuses a path that names another hold than the
// token's, a request without credentials, and one without a key.
func TestReleaseEndpointRefusals(t *testing.T) {
	w := newE2E(t, e2eConfig{})
	h := w.iss.RedemptionHandler()
	tok := mintE2E(t, w, e2eProvider, e2eService)
	send := func(target, apiKey, idk string, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, "https://orch.example/redeem"+target, strings.NewReader(body))
		if apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+apiKey)
		}
		if idk != "" {
			req.Header.Set("Idempotency-Key", idk)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	c, _ := payment.ParseTokenClaims(tok)
	body, _ := json.Marshal(payment.ReleaseRequest{Token: tok})
	for _, tc := range []struct {
		name, target, key, idk, body string
		status                       int
		code                         string
	}{
		{"other hold in the path", "/hold_other/release", "cf-api-key", "a", string(body), 400, "invalid_request"},
		{"no token", "/" + c.HoldID + "/release", "cf-api-key", "b", `{}`, 400, "invalid_request"},
		{"not authenticated", "/" + c.HoldID + "/release", "", "c", string(body), 401, "unauthorized"},
		{"no idempotency key", "/" + c.HoldID + "/release", "cf-api-key", "", string(body), 400, "idempotency_key_required"},
		{"released", "/" + c.HoldID + "/release", "cf-api-key", "d", string(body), 200, ""},
	} {
		resp := send(tc.target, tc.key, tc.idk, tc.body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
			continue
		}
		var doc struct {
			Code  string                  `json:"code"`
			State payment.RedemptionState `json:"state"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		if doc.Code != tc.code {
			t.Errorf("%s: code %q, want %q", tc.name, doc.Code, tc.code)
		}
		if tc.status == 200 && doc.State != payment.StateRevoked {
			t.Errorf("%s: state %q, want revoked", tc.name, doc.State)
		}
	}
	w.wantMoney(0, 0, 0)
}

func TestReleaseGoldenVector(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "token.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tok tokenVector
	if err := json.Unmarshal(raw, &tok); err != nil {
		t.Fatal(err)
	}
	r := goldenReceipt()
	// A released token was never redeemed: no amount, no redemption time.
	r.Amount, r.RedeemedAt, r.State = budget.Money{}, time.Time{}, payment.StateRevoked
	req, _ := json.Marshal(payment.ReleaseRequest{Token: tok.JWS})
	resp, _ := json.Marshal(payment.ViewOf(r))
	v := exchangeVector(t, "token_release.json", req, resp)
	if parsed, err := payment.ParseReleaseRequest(v.Request); err != nil || parsed.Token != tok.JWS {
		t.Fatalf("request vector: %+v %v", parsed, err)
	}
}

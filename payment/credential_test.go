package payment_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paywall"
	"github.com/google/go-cmp/cmp"
)

type nopChecker struct{}

func (nopChecker) Verify(context.Context, string) (*payment.TokenClaims, error) {
	return nil, payment.ErrTokenInvalid
}

type nopRedeemer struct{}

func (nopRedeemer) Redeem(context.Context, string, budget.Money, string) (*payment.Receipt, error) {
	return nil, payment.ErrTokenInvalid
}

const fakeToken = "eyJhbGciOiJFZERTQSIsInR5cCI6ImFnZW50cHJvdi1wYXltZW50K2p3dCJ9.e30.c2ln"

func TestCredentialRoundTrip(t *testing.T) {
	c := sampleChallenge(t)
	cred, err := payment.NewTokenCredential(c, fakeToken)
	if err != nil {
		t.Fatal(err)
	}
	cred.Source = "did:web:agent.example"
	v, err := payment.FormatCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "Payment ") || strings.ContainsAny(v[len("Payment "):], "= ") {
		t.Fatalf("value %q is not Payment <base64url no pad>", v)
	}
	got, err := payment.ParseCredential(v)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(cred, got); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
	tok, err := got.Token()
	if err != nil || tok != fakeToken {
		t.Fatalf("Token() = %q, %v", tok, err)
	}
	// The echo verifies under the secret the challenge was made with.
	if !payment.VerifyEchoID([][]byte{testChallengeSecret}, &got.Challenge) {
		t.Fatal("echo does not verify")
	}
	// Merged with another scheme in one value, it is still found.
	got2, err := payment.ParseCredential(`Bearer abc.def, ` + v)
	if err != nil || got2.Challenge.ID != c.ID {
		t.Fatalf("merged value: %v, %v", got2, err)
	}
}

func TestCredentialRedacted(t *testing.T) {
	cred, err := payment.NewTokenCredential(sampleChallenge(t), fakeToken)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := payment.NewTransport(payment.PayerFunc(func(context.Context, *payment.PayRequest) (string, error) { return "", nil }),
		map[string]string{"https://a.example": "a"}, budget.USD(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	authz, _ := payment.FormatCredential(cred)
	payment.TransportStore(tr, "k", authz, time.Now())
	pw, err := paywall.NewPaywall("r", [][]byte{testChallengeSecret}, nopChecker{}, nopRedeemer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for _, v := range []any{cred, *cred, []any{cred}, tr, pw} {
			if s := fmt.Sprintf(verb, v); strings.Contains(s, "c2ln") || strings.Contains(s, "eyJ") || strings.Contains(s, "0123456789abcdef") {
				t.Errorf("%s of %T leaks a secret: %s", verb, v, s)
			}
		}
	}
}

func TestParseCredentialErrors(t *testing.T) {
	c := sampleChallenge(t)
	e, _ := c.Echo()
	enc := func(v any) string {
		j, _ := json.Marshal(v)
		return "Payment " + paywire.HdrB64.EncodeToString(j)
	}
	payload := map[string]any{"token": fakeToken}
	cases := []struct {
		name  string
		value string
		want  *payment.Error
	}{
		{"no payment", "Bearer abc", payment.ErrPaymentRequired},
		{"empty", "", payment.ErrPaymentRequired},
		{"params instead of token68", `Payment a="b"`, payment.ErrMalformedCredential},
		{"not base64url", "Payment ***", payment.ErrMalformedCredential},
		{"not json", "Payment " + paywire.HdrB64.EncodeToString([]byte("nope")), payment.ErrMalformedCredential},
		{"array", enc([]int{1}), payment.ErrMalformedCredential},
		{"no challenge", enc(map[string]any{"payload": payload}), payment.ErrMalformedCredential},
		{"challenge not object", enc(map[string]any{"challenge": "x", "payload": payload}), payment.ErrMalformedCredential},
		{"no payload", enc(map[string]any{"challenge": e}), payment.ErrMalformedCredential},
		{"payload not object", enc(map[string]any{"challenge": e, "payload": "tok"}), payment.ErrMalformedCredential},
		{"missing id", enc(map[string]any{"challenge": map[string]any{"realm": "r", "method": "agentprov", "intent": "charge", "request": "e30"}, "payload": payload}), payment.ErrMalformedCredential},
		{"id not string", enc(map[string]any{"challenge": map[string]any{"id": 1, "realm": "r", "method": "agentprov", "intent": "charge", "request": "e30"}, "payload": payload}), payment.ErrMalformedCredential},
		{"opaque not base64", enc(map[string]any{"challenge": map[string]any{"id": "i", "realm": "r", "method": "agentprov", "intent": "charge", "request": "e30", "opaque": "!!"}, "payload": payload}), payment.ErrMalformedCredential},
		{"opaque number", enc(map[string]any{"challenge": map[string]any{"id": "i", "realm": "r", "method": "agentprov", "intent": "charge", "request": "e30", "opaque": 3}, "payload": payload}), payment.ErrMalformedCredential},
		{"two payment credentials", enc(map[string]any{"challenge": e, "payload": payload}) + ", " + enc(map[string]any{"challenge": e, "payload": payload}), payment.ErrMalformedCredential},
		{"too large", "Payment " + strings.Repeat("A", payment.MaxHeaderBytes), payment.ErrMalformedCredential},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := payment.ParseCredential(tc.value)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseCredential = %v, %v; want %s", got, err, tc.want.Code)
			}
		})
	}
	// A parsed credential without a token is refused by Token().
	v := enc(map[string]any{"challenge": e, "payload": map[string]any{"type": "hash"}})
	cred, err := payment.ParseCredential(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cred.Token(); !errors.Is(err, payment.ErrMalformedCredential) {
		t.Fatalf("Token() err = %v", err)
	}
}

func FuzzParseCredential(f *testing.F) {
	cred, _ := payment.NewTokenCredential(sampleChallenge(f), fakeToken)
	v, _ := payment.FormatCredential(cred)
	f.Add(v)
	f.Add("Bearer x, " + v)
	f.Add("Payment eyJjaGFsbGVuZ2UiOnt9LCJwYXlsb2FkIjp7fX0")
	f.Add("Payment e30=")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := payment.ParseCredential(s)
		if err != nil {
			if !errors.Is(err, payment.ErrMalformedCredential) && !errors.Is(err, payment.ErrPaymentRequired) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		v, err := payment.FormatCredential(c)
		if err != nil {
			if strings.Contains(err.Error(), "-byte limit") {
				return // re-encoding may grow a large value over the limit
			}
			t.Fatalf("parsed %v but cannot format: %v", c, err)
		}
		again, err := payment.ParseCredential(v)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if d := cmp.Diff(c, again); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

package payment_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
)

// FuzzParseRedemptionRequest: no panic; an accepted body has a token and a
// positive integer amount with an upper-case currency, and round-trips.
func FuzzParseRedemptionRequest(f *testing.F) {
	f.Add([]byte(`{"token":"a.b.c","amount":{"amount":1299,"currency":"USD"}}`))
	f.Add([]byte(`{"token":"a.b.c","amount":{"amount":1.5,"currency":"USD"}}`))
	f.Add([]byte(`{"token":"a.b.c","amount":{"amount":-1,"currency":"usd"}}`))
	f.Add([]byte(`{"token":"","amount":null}`))
	f.Add([]byte(`{"token":"x","amount":{"amount":1e3,"currency":"EUR"}} {}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := payment.ParseRedemptionRequest(body)
		if err != nil {
			if _, ok := err.(*payment.Error); !ok {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		if req.Token == "" || req.Amount.Amount <= 0 || paywire.CheckMoney(req.Amount) != nil {
			t.Fatalf("accepted %+v", req)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := payment.ParseRedemptionRequest(again)
		if err != nil || back != req {
			t.Fatalf("round trip: %+v %v", back, err)
		}
	})
}

// FuzzParseReleaseRequest: no panic; errors are typed invalid_request; an
// accepted body has a token within the size limit and round-trips.
func FuzzParseReleaseRequest(f *testing.F) {
	f.Add([]byte(`{"token":"a.b.c"}`))
	f.Add([]byte(`{"token":""}`))
	f.Add([]byte(`{"token":null}`))
	f.Add([]byte(`{"token":"a.b.c"} {}`))
	f.Add([]byte(`{"token":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := payment.ParseReleaseRequest(body)
		if err != nil {
			var pe *payment.Error
			if !errors.As(err, &pe) || pe.Code != payment.ErrInvalidRequest.Code {
				t.Fatalf("error %v is not a typed invalid_request", err)
			}
			return
		}
		if req.Token == "" || len(req.Token) > payment.MaxTokenSize {
			t.Fatalf("accepted %+v", req)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := payment.ParseReleaseRequest(again)
		if err != nil || back != req {
			t.Fatalf("round trip: %+v %v", back, err)
		}
	})
}

package payment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/paytest"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/paywall"
)

func server(w *paytest.World, t testing.TB) *httptest.Server {
	mux := http.NewServeMux()
	h := w.Issuer.RedemptionHandler()
	mux.Handle("/payment/redemptions", h)
	mux.Handle("/payment/redemptions/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type httpResult struct {
	status   int
	replayed bool
	code     string
	receipt  string
	retry    string
}

func post(t testing.TB, url, apiKey, key string, body []byte) httpResult {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return httpResult{}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var v struct {
		Code    string `json:"code"`
		Receipt string `json:"receipt"`
	}
	_ = json.Unmarshal(data, &v)
	return httpResult{resp.StatusCode, resp.Header.Get("Idempotent-Replayed") == "true", v.Code, v.Receipt, resp.Header.Get("Retry-After")}
}

// Test100ConcurrentRedemptions: 100 concurrent redemptions of one token,
// mixing one idempotency key with the same body, the same body reordered,
// a different body, and fresh keys. Exactly one commit and one charge.
func Test100ConcurrentRedemptions(t *testing.T) {
	w := paytest.NewWorld(t)
	f := &paytest.FaultHolds{Holds: w.Ledger}
	w.Holds = f
	w.Restart()
	srv := server(w, t)
	url := srv.URL + "/payment/redemptions"
	m := w.Mint(5000)
	same := fmt.Appendf(nil, `{"token":%q,"amount":{"amount":2500,"currency":"USD"}}`, m.Token)
	reordered := fmt.Appendf(nil, `{ "amount": {"currency":"USD", "amount":2500}, "token": %q }`, m.Token)
	other := fmt.Appendf(nil, `{"token":%q,"amount":{"amount":2600,"currency":"USD"}}`, m.Token)

	type job struct {
		key  string
		body []byte
	}
	var jobs []job
	for i := range 100 {
		switch {
		case i < 40:
			jobs = append(jobs, job{"K", same})
		case i < 55:
			jobs = append(jobs, job{"K", reordered})
		case i < 65:
			jobs = append(jobs, job{"K", other})
		default:
			jobs = append(jobs, job{fmt.Sprintf("fresh-%d", i), same})
		}
	}
	results := make([]httpResult, len(jobs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			<-start
			results[i] = post(t, url, "cf-key", j.key, j.body)
		})
	}
	close(start)
	wg.Wait()

	if n := f.CommitCalls(); n != 1 {
		t.Errorf("Commit called %d times, want 1", n)
	}
	if n := len(w.Rail.Charges()); n != 1 || w.Rail.Calls() != 1 {
		t.Errorf("charges %d, rail calls %d, want 1 and 1", n, w.Rail.Calls())
	}
	firsts, receipts := 0, map[string]bool{}
	for i, r := range results {
		switch {
		case r.status == http.StatusOK || r.status == http.StatusAccepted:
			receipts[r.receipt] = true
			if !r.replayed {
				firsts++
			}
		case r.status == http.StatusConflict && (r.code == "idempotency_in_flight" || r.code == "redemption_in_flight"):
			if r.retry == "" {
				t.Errorf("job %d: 409 without Retry-After", i)
			}
		case r.status == http.StatusUnprocessableEntity && r.code == "idempotency_conflict":
			if jobs[i].key != "K" {
				t.Errorf("job %d: 422 on a fresh key", i)
			}
		case r.status == http.StatusConflict && r.code == "already_redeemed":
		default:
			t.Errorf("job %d: unexpected %+v", i, r)
		}
	}
	if len(receipts) != 1 {
		t.Errorf("%d distinct receipts", len(receipts))
	}
	// Key K's first request plus fresh keys may each see the receipt un-replayed
	// (the core replays it); K's duplicates are replayed by the middleware.
	if firsts < 1 {
		t.Error("no request succeeded")
	}
	rec := w.Record(m.Claims.HoldID)
	w.Consistent(m.Claims.HoldID)
	if w.Spent() != rec.Amount.Amount {
		t.Errorf("spent %d", w.Spent())
	}

	// Afterwards: the same key and body replays, a different body is 422.
	r := post(t, url, "cf-key", "K", reordered)
	if !((r.status == 200 && r.replayed) || r.status == 422) {
		t.Errorf("late replay = %+v", r)
	}
}

func TestRedemptionEndpointRules(t *testing.T) {
	w := paytest.NewWorld(t)
	srv := server(w, t)
	url := srv.URL + "/payment/redemptions"
	m := w.Mint(1000)
	body := fmt.Appendf(nil, `{"token":%q,"amount":{"amount":100,"currency":"USD"}}`, m.Token)

	if r := post(t, url, "cf-key", "", body); r.status != 400 || r.code != "idempotency_key_required" {
		t.Errorf("no key: %+v", r)
	}
	if r := post(t, url, "wrong", "k", body); r.status != 401 || r.code != "unauthorized" {
		t.Errorf("bad api key: %+v", r)
	}
	if r := post(t, url, "neon-key", "k", body); r.status != 403 || r.code != "forbidden" {
		t.Errorf("other provider: %+v", r)
	}
	if r := post(t, url, "cf-key", "k", []byte(`{"token":"x","amount":{"amount":1.5,"currency":"USD"}}`)); r.status != 400 || r.code != "invalid_amount" {
		t.Errorf("float amount: %+v", r)
	}
	first := post(t, url, "cf-key", "k1", body)
	if first.status != 200 || first.replayed || first.receipt == "" {
		t.Fatalf("first: %+v", first)
	}
	again := post(t, url, "cf-key", "k1", body)
	if again.status != 200 || !again.replayed || again.receipt != first.receipt {
		t.Errorf("replay: %+v", again)
	}
	if r := post(t, url, "cf-key", "k1", bytes.Replace(body, []byte("100"), []byte("101"), 1)); r.status != 422 || r.code != "idempotency_conflict" {
		t.Errorf("changed body: %+v", r)
	}
	// The key is scoped per provider: neon's k1 is another key.
	if r := post(t, url, "neon-key", "k1", body); r.status != 403 {
		t.Errorf("neon k1: %+v", r)
	}

	// Client side.
	red, err := paywall.NewRedeemer(url, &paywall.RedeemerOptions{APIKey: "cf-key", Keys: w.Issuer.JWKS(), Issuer: paytest.IssuerURL})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := red.Redeem(context.Background(), m.Token, budget.USD(100), "k2")
	if err != nil || rc.Signed != first.receipt || rc.State != payment.StateSettled {
		t.Fatalf("Redeemer: %+v %v", rc, err)
	}
	st, err := red.Status(context.Background(), m.Claims.HoldID)
	if err != nil || st.State != payment.StateSettled || st.Amount != budget.USD(100) {
		t.Fatalf("Status: %+v %v", st, err)
	}
	_, err = red.Redeem(context.Background(), m.Token, budget.USD(200), "k3")
	paytest.WantCode(t, err, payment.ErrAlreadyRedeemed)
	var pe *payment.Error
	if !errors.As(err, &pe) || pe.Status != http.StatusConflict {
		t.Fatalf("client error %#v", err)
	}
	neon, _ := paywall.NewRedeemer(url, &paywall.RedeemerOptions{APIKey: "neon-key"})
	_, err = neon.Status(context.Background(), m.Claims.HoldID)
	paytest.WantCode(t, err, payment.ErrNotFound)
	if _, err := paywall.NewRedeemer("http://example.com/x", nil); err == nil {
		t.Fatal("plain http to a remote host accepted")
	}
}

func TestIdempotentMiddleware(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	status := http.StatusCreated
	h := payment.Idempotent(payment.NewMemoryIdempotencyStore(), nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		s := status
		mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(s)
		fmt.Fprintf(w, "call %d: %s", calls, b)
	}))
	do := func(key, body string) *httptest.ResponseRecorder {
		rr := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/x", bytes.NewBufferString(body))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		h.ServeHTTP(rr, req)
		return rr
	}
	status = http.StatusInternalServerError
	if rr := do("a", `{"x":1}`); rr.Code != 500 {
		t.Fatal(rr.Code)
	}
	status = http.StatusCreated
	rr := do("a", `{"x":1}`) // 5xx was not cached: runs again
	if rr.Code != 201 || rr.Body.String() != `call 2: {"x":1}` {
		t.Fatalf("%d %q", rr.Code, rr.Body.String())
	}
	rr = do("a", "{ \"x\" : 1 }")
	if rr.Code != 201 || rr.Header().Get("Idempotent-Replayed") != "true" || rr.Body.String() != `call 2: {"x":1}` {
		t.Fatalf("replay %d %q", rr.Code, rr.Body.String())
	}
	if rr := do("a", `{"x":2}`); rr.Code != 422 {
		t.Fatal(rr.Code)
	}
	if rr := do("", `{}`); rr.Code != 400 {
		t.Fatal(rr.Code)
	}
	rr = httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/x", nil))
	if rr.Code != 201 || calls != 3 {
		t.Fatalf("GET passes through: %d, calls %d", rr.Code, calls)
	}
}

func TestIdempotentInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := payment.Idempotent(payment.NewMemoryIdempotencyStore(), nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.WriteHeader(http.StatusOK)
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		req := httptest.NewRequest(http.MethodPost, "/x", bytes.NewBufferString(`{}`))
		req.Header.Set("Idempotency-Key", "k")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}()
	<-entered
	req := httptest.NewRequest(http.MethodPost, "/x", bytes.NewBufferString(`{}`))
	req.Header.Set("Idempotency-Key", "k")
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	close(release)
	<-done
	if rr.Code != 409 || rr.Header().Get("Retry-After") == "" {
		t.Fatalf("in flight: %d %v", rr.Code, rr.Header())
	}
}

// TestProviderToldOfOutcome: a 202 while the rail is down, then GET shows
// settled once the outbox ran; a refusal is a 402 and GET shows reversed.
func TestProviderToldOfOutcome(t *testing.T) {
	w := paytest.NewWorld(t)
	srv := server(w, t)
	url := srv.URL + "/payment/redemptions"
	red, err := paywall.NewRedeemer(url, &paywall.RedeemerOptions{APIKey: "cf-key", Keys: w.Issuer.JWKS(), Issuer: paytest.IssuerURL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	slow := w.Mint(500)
	w.Rail.FailNext(1)
	rc, err := red.Redeem(ctx, slow.Token, budget.USD(500), "a")
	if err != nil || rc.State != payment.StateSettling || !errors.Is(rc.Err(), payment.ErrSettlementPending) {
		t.Fatalf("during outage: %+v %v", rc, err)
	}
	if _, err := payment.VerifyReceipt(rc.Signed, w.Issuer.JWKS(), paytest.IssuerURL); err != nil {
		t.Fatalf("a pending redemption still has a valid receipt: %v", err)
	}
	w.SettleAll()
	st, err := red.Status(ctx, slow.Claims.HoldID)
	if err != nil || st.State != payment.StateSettled || st.Reference == "" || st.Err() != nil {
		t.Fatalf("after outbox: %+v %v", st, err)
	}

	bad := w.Mint(300)
	w.Rail.Refuse(bad.Claims.HoldID)
	_, err = red.Redeem(ctx, bad.Token, budget.USD(300), "b")
	paytest.WantCode(t, err, payment.ErrSettlementRefused)
	st, err = red.Status(ctx, bad.Claims.HoldID)
	if err != nil || st.State != payment.StateReversed {
		t.Fatalf("refused: %+v %v", st, err)
	}
	w.Consistent(slow.Claims.HoldID, bad.Claims.HoldID)
}

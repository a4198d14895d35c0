package demo

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/internal/browsertest"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

// spendFixture: one paid resource ($7.00 of the default $100.00 cap) and
// the spend page on its own server.
func spendFixture(t *testing.T) (pair, *httptest.Server, string) {
	t.Helper()
	p, ctx := newPair(t), context.Background()
	if _, err := p.orch.Connect(ctx, ConnectRequest{Project: "p", Ref: "cloud/compute:small", AcceptTerms: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.orch.Add(ctx, AddRequest{Project: "p", Ref: "cloud/compute:small", Name: "vm"}); err != nil {
		t.Fatal(err)
	}
	// A charge whose provider-supplied service text is hostile.
	p.orch.charges.record(ctx, issuer.Redemption{HoldID: "h-evil", Provider: "cloud", Project: "p",
		Service: `cloud/<script>alert("xss")</script>`, Amount: budget.USD(150), RedeemedAt: time.Now(),
		State: payment.StateSettled, Receipt: "eyJhbGciOiJFZERTQSJ9.e30.sig"})
	mux := http.NewServeMux()
	signIn, err := p.orch.MountSpendPage(mux, "p")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return p, srv, signIn
}

func monthCap(t *testing.T, p pair) int64 {
	t.Helper()
	u, err := p.orch.Ledger.Usage(context.Background(), budget.Scope{Project: "p", Provider: "cloud"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range u.Counters {
		if c.Counter.Provider == "cloud" && c.Counter.Window.Period() == budget.Month && c.Limit != nil {
			return c.Limit.Amount
		}
	}
	return -1
}

func TestSpendPageBrowser(t *testing.T) {
	b := browsertest.New(t, 30*time.Second)
	p, srv, signIn := spendFixture(t)

	// Without the person's session the page is read only.
	b.Do(t, chromedp.Navigate(srv.URL+SpendPath), chromedp.WaitVisible(chromedp.ID("read-only")))
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll("form").length`); n != 0 {
		t.Errorf("%d forms shown without the person's session", n)
	}

	b.Do(t, chromedp.Navigate(srv.URL+signIn), chromedp.WaitVisible(chromedp.ID("spend")))
	cell := func(row, class string) string {
		return browsertest.Eval[string](t, b, `document.querySelector("#row-`+row+` .`+class+`").textContent`)
	}
	spent, held := cell("cloud", "spent"), cell("cloud", "held")
	if !(spent == "$7.00" && held == "$0.00") && !(spent == "$0.00" && held == "$7.00") {
		t.Errorf("cloud spent %q held %q, want $7.00 in one of them", spent, held)
	}
	if c, r := cell("cloud", "cap"), cell("cloud", "remaining"); c != "$100.00" || r != "$93.00" {
		t.Errorf("cloud cap %q remaining %q, want $100.00 and $93.00", c, r)
	}
	if a := cell("cloud", "alerts"); !strings.HasPrefix(a, "50, 80, 100 %") {
		t.Errorf("alerts %q", a)
	}
	// The hostile service text is inert.
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll("script").length`); n != 0 || len(b.Dialogs()) != 0 {
		t.Errorf("injected script: %d elements, dialogs %q", n, b.Dialogs())
	}
	if got := browsertest.Eval[string](t, b, `document.getElementById("charges").innerText`); !strings.Contains(got, `cloud/<script>alert("xss")</script>`) || !strings.Contains(got, "$1.50") {
		t.Errorf("charges table:\n%s", got)
	}

	// Set alerts, then raise the cap: the first step only asks.
	b.Do(t,
		chromedp.SetValue(chromedp.CSS(`#row-cloud input[name=thresholds]`), "75, 90"),
		chromedp.Click(chromedp.CSS(`#row-cloud .alerts-change`)),
		chromedp.WaitVisible(chromedp.ID("message")),
	)
	if a := cell("cloud", "alerts"); !strings.HasPrefix(a, "75, 90 %") {
		t.Errorf("alerts after saving: %q", a)
	}
	if dir := os.Getenv("AGENTPROV_SCREENSHOTS"); dir != "" {
		b.Screenshot(t, filepath.Join(dir, "spend-page.png"))
	}
	b.Do(t,
		chromedp.SetValue(chromedp.CSS(`#row-cloud input[name=limit]`), "150"),
		chromedp.Click(chromedp.CSS(`#row-cloud .cap-change`)),
		chromedp.WaitVisible(chromedp.ID("confirm-cap")),
	)
	if got := browsertest.Eval[string](t, b, `document.getElementById("confirm-limit").textContent`); got != "$150.00" {
		t.Errorf("confirmation shows %q", got)
	}
	if c := monthCap(t, p); c != 10000 {
		t.Fatalf("cap changed before confirmation: %d", c)
	}
	b.Do(t, chromedp.Click(chromedp.ID("confirm-cap")), chromedp.WaitVisible(chromedp.ID("message")))
	if c := monthCap(t, p); c != 15000 {
		t.Fatalf("cap after confirmation: %d, want 15000", c)
	}
	if c := cell("cloud", "cap"); c != "$150.00" {
		t.Errorf("cap shown %q", c)
	}
}

// An agent cannot raise the cap: not without the person's session, and
// not with it either when it sends its bearer token.
func TestSpendPageRefusesAgent(t *testing.T) {
	p, srv, signIn := spendFixture(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	post := func(header http.Header) int {
		// Load the page (cookie + token), then post a confirmed raise.
		resp, err := c.Get(srv.URL + SpendPath)
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		buf := make([]byte, 64<<10)
		n, _ := resp.Body.Read(buf)
		body.Write(buf[:n])
		resp.Body.Close()
		tok := ""
		if m := csrfField.FindStringSubmatch(body.String()); m != nil {
			tok = m[1]
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+SpendPath, strings.NewReader(url.Values{
			"csrf_token": {tok}, "action": {"cap-confirm"}, "provider": {"cloud"}, "limit": {"1000"}, "confirm": {"1." + tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err = c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post(nil); s != http.StatusForbidden {
		t.Errorf("no session: HTTP %d, want 403", s)
	}
	if resp, err := c.Get(srv.URL + signIn); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	if s := post(http.Header{"Authorization": {"Bearer agent-token"}}); s != http.StatusForbidden {
		t.Errorf("session plus agent token: HTTP %d, want 403", s)
	}
	if s := post(nil); s != http.StatusBadRequest {
		t.Errorf("session, forged confirmation: HTTP %d, want 400", s)
	}
	if cap := monthCap(t, p); cap != 10000 {
		t.Fatalf("cap changed to %d", cap)
	}
	// The sign-in link works once.
	resp, err := http.Get(srv.URL + signIn)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("second use of the sign-in link: HTTP %d", resp.StatusCode)
	}
}

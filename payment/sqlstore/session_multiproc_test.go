package sqlstore_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	budgetsql "github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
	"github.com/agentprov/agentprov/payment/paywall"
	"github.com/agentprov/agentprov/payment/sqlstore"
)

// The metered-session crash test: the provider (a Paywall offering
// sessions over a sqlstore.SessionStore) and the orchestrator's redemption
// endpoint (an Issuer over budget and payment sqlstores) run as separate OS
// processes on one PostgreSQL database; the parent is the agent (a
// Transport paying with sessions opened by a second Issuer instance on the
// same database). The parent kills either child with SIGKILL at random
// moments and restarts it on the same port, then lets everything settle
// and checks the database against what the agent and the provider saw.

const (
	envSessChild = "AGENTPROV_SESSION_CHILD" // "provider" or "orchestrator"
	envSessDSN   = "AGENTPROV_SESSION_CHILD_DSN"
	envSessAddr  = "AGENTPROV_SESSION_CHILD_ADDR"   // listen address
	envSessOrch  = "AGENTPROV_SESSION_CHILD_ORCH"   // the redemption endpoint (provider)
	envSessLog   = "AGENTPROV_SESSION_CHILD_SERVED" // file of served calls (provider)

	mpsIssuer   = "https://orch.example"
	mpsProvider = "acme"
	mpsService  = "acme/inference:chat"
	mpsProject  = "proj-crash"
	mpsAPIKey   = "acme-redemption-key"
	mpsPrice    = 5                // minor units per call
	mpsCap      = 2000             // the provider's monthly cap: 400 calls
	mpsTTL      = 35 * time.Second // the agent stops 30 s before exp, the provider 5 s before
	mpsWindow   = 5 * time.Second  // settlement window: calls stop 5 s before exp
)

var (
	mpsSecret = []byte("acme-session-secret-0123456789abcdef!")
	mpsKey    = payment.SigningKey{KeyID: "orch-1", Key: ed25519.NewKeyFromSeed([]byte("agentprov-session-crash-seed-32b"))}
)

// mpsOrchestrator is one orchestrator instance on the shared database.
func mpsOrchestrator(ctx context.Context, db *sql.DB) (*issuer.Issuer, *budget.Ledger, error) {
	bs, err := budgetsql.New(ctx, db, budgetsql.Postgres, &budgetsql.Options{TablePrefix: "orch_"})
	if err != nil {
		return nil, nil, err
	}
	ledger, err := budget.NewLedger(bs, &budget.LedgerOptions{DefaultProviderCap: budget.USD(mpsCap)})
	if err != nil {
		return nil, nil, err
	}
	ps, err := sqlstore.New(ctx, db, sqlstore.Postgres, &sqlstore.Options{TablePrefix: "orch_"})
	if err != nil {
		return nil, nil, err
	}
	iss, err := issuer.NewIssuer(mpsIssuer, mpsKey, ledger, &issuer.IssuerOptions{
		Rail: issuer.NewMemoryRail(nil), Store: ps, Idempotency: ps, Logger: slog.New(slog.DiscardHandler),
		Authenticate: issuer.BearerAuthenticator(map[string]string{mpsProvider: mpsAPIKey}),
	})
	return iss, ledger, err
}

// mpsPaywall is one provider instance on the shared database. served, if
// set, is called by the handler before it answers.
func mpsPaywall(ctx context.Context, db *sql.DB, orchURL string, now func() time.Time, served func(*paywall.Paid)) (*paywall.Paywall, http.Handler, error) {
	// The orchestrator's public keys, as its JWKS endpoint would serve them.
	mem, err := budget.NewLedger(budget.NewMemoryStore(nil), nil)
	if err != nil {
		return nil, nil, err
	}
	keys, err := issuer.NewIssuer(mpsIssuer, mpsKey, mem, &issuer.IssuerOptions{Rail: issuer.NewMemoryRail(nil)})
	if err != nil {
		return nil, nil, err
	}
	verifier, err := payment.NewTokenVerifier(mpsIssuer, mpsProvider, keys.JWKS(), &payment.TokenVerifierOptions{Now: now})
	if err != nil {
		return nil, nil, err
	}
	red, err := paywall.NewRedeemer(orchURL+"/redeem", &paywall.RedeemerOptions{APIKey: mpsAPIKey, Keys: keys.JWKS(), Issuer: mpsIssuer,
		HTTPClient: &http.Client{Timeout: 2 * time.Second}})
	if err != nil {
		return nil, nil, err
	}
	cs, err := sqlstore.NewChallengeStore(ctx, db, sqlstore.Postgres, &sqlstore.Options{TablePrefix: "prov_"})
	if err != nil {
		return nil, nil, err
	}
	ss, err := sqlstore.NewSessionStore(ctx, db, sqlstore.Postgres, &sqlstore.Options{TablePrefix: "prov_"})
	if err != nil {
		return nil, nil, err
	}
	pw, err := paywall.NewPaywall("api.acme.example", [][]byte{[]byte("acme-challenge-secret-0123456789abcdef")}, verifier, red, &paywall.PaywallOptions{
		Store: cs, Now: now, Logger: slog.New(slog.DiscardHandler),
		Sessions: &paywall.SessionOptions{Secret: mpsSecret, Store: ss, SettleWindow: mpsWindow, IdleTimeout: 300 * time.Millisecond},
	})
	if err != nil {
		return nil, nil, err
	}
	h := pw.RequireMetered(mpsService, budget.USD(mpsPrice))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := paywall.PaidFromContext(r.Context()); ok && served != nil {
			served(p)
		}
		_, _ = io.WriteString(w, "inferred")
	}))
	return pw, h, nil
}

// TestSessionCrashChild is a child process of TestPostgresSessionsSurviveKill.
func TestSessionCrashChild(t *testing.T) {
	role := os.Getenv(envSessChild)
	if role == "" {
		t.Skip("child process of TestPostgresSessionsSurviveKill")
	}
	ctx := context.Background()
	db, err := sql.Open("pgx", os.Getenv(envSessDSN))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(8)
	ln, err := net.Listen("tcp", os.Getenv(envSessAddr))
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	var background func(context.Context)
	switch role {
	case "orchestrator":
		iss, _, err := mpsOrchestrator(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		h = iss.RedemptionHandler()
		background = func(ctx context.Context) { _, _ = iss.SettlePending(ctx) }
	case "provider":
		f, err := os.OpenFile(os.Getenv(envSessLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		served := func(p *paywall.Paid) {
			// One write(2) per call, before the answer: a SIGKILL after it
			// cannot lose the line (the kernel has it).
			mu.Lock()
			defer mu.Unlock()
			if _, err := fmt.Fprintf(f, "%s\n", p.Claims.HoldID); err != nil {
				t.Error(err)
			}
		}
		pw, ph, err := mpsPaywall(ctx, db, os.Getenv(envSessOrch), time.Now, served)
		if err != nil {
			t.Fatal(err)
		}
		h = ph
		background = func(ctx context.Context) { _, _ = pw.SettleSessions(ctx) }
	default:
		t.Fatalf("unknown role %q", role)
	}
	go func() {
		for {
			time.Sleep(100 * time.Millisecond)
			background(ctx)
		}
	}()
	_ = http.Serve(ln, h) // until killed
}

// mpsChild is a restartable child process.
type mpsChild struct {
	t    *testing.T
	role string
	addr string
	env  []string
	cmd  *exec.Cmd
}

func (c *mpsChild) start() {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSessionCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), append([]string{envSessChild + "=" + c.role, envSessAddr + "=" + c.addr}, c.env...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s child did not listen on %s", c.role, c.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *mpsChild) kill() {
	_ = c.cmd.Process.Kill() // SIGKILL
	_ = c.cmd.Wait()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestPostgresSessionsSurviveKill: with both the provider and the
// orchestrator killed (SIGKILL) and restarted at random while an agent
// makes paid calls on metered sessions, in the end every session is
// settled for exactly what it consumed, the ledger committed exactly the
// sum of those settlements and holds nothing, the cap was never exceeded,
// and every call the agent got an answer for (and every call the provider
// served) was consumed on a session, so paid.
func TestPostgresSessionsSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process crash test: skipped with -short")
	}
	dsn := sqltest.PostgresSchema(t)
	ctx := context.Background()
	db := sqltest.OpenPostgres(t, dsn)
	iss, ledger, err := mpsOrchestrator(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	orch := &mpsChild{t: t, role: "orchestrator", addr: freeAddr(t), env: []string{envSessDSN + "=" + dsn}}
	servedLog := t.TempDir() + "/served"
	prov := &mpsChild{t: t, role: "provider", addr: freeAddr(t), env: []string{
		envSessDSN + "=" + dsn, envSessOrch + "=http://" + orch.addr, envSessLog + "=" + servedLog}}
	orch.start()
	prov.start()
	t.Cleanup(func() { prov.kill(); orch.kill() })

	provURL := "http://" + prov.addr
	sp, err := issuer.IssuerSessionPayer(iss, mpsProject, map[string][]byte{mpsProvider: mpsSecret}, &issuer.SessionPayerOptions{TTL: mpsTTL})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := payment.NewTransport(sp, map[string]string{provURL: mpsProvider}, budget.USD(100), &payment.TransportOptions{
		SessionCalls: 8, Base: &http.Transport{MaxIdleConnsPerHost: 8, ResponseHeaderTimeout: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	// Load: 4 agents calling for the load phase while the killer runs.
	var ok, failed, capped atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(provURL + "/v1/infer")
				switch {
				case err != nil && errors.Is(err, payment.ErrCapExceeded):
					if capped.Add(1) == 1 {
						t.Logf("first cap refusal: %v", err)
					}
					time.Sleep(50 * time.Millisecond)
				case err != nil:
					if failed.Add(1) == 1 {
						t.Logf("first failure: %v", err)
					}
					time.Sleep(10 * time.Millisecond)
				default:
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						if resp.Header.Get(payment.ReceiptHeaderName) == "" {
							t.Error("paid answer without Payment-Receipt")
						}
						ok.Add(1)
					} else {
						failed.Add(1)
					}
				}
			}
		}()
	}
	kills := map[string]int{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); {
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		c := prov
		if rng.IntN(2) == 0 {
			c = orch
		}
		c.kill()
		kills[c.role]++
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		c.start()
	}
	close(stop)
	wg.Wait()
	t.Logf("agent: %d answered, %d failed, %d refused by the cap; kills: %v", ok.Load(), failed.Load(), capped.Load(), kills)
	if ok.Load() < 20 {
		t.Fatalf("only %d calls answered: the test exercised nothing", ok.Load())
	}

	// Quiet: both processes up; sessions go idle or reach their deadline
	// (a session whose call was in flight when the provider died waits for
	// its deadline), are redeemed, and the outbox finishes.
	var sessions []paywall.SessionRecord
	deadline := time.Now().Add(mpsTTL + 30*time.Second)
	for {
		sessions = mpsSessions(t, db)
		pending := 0
		for _, s := range sessions {
			if s.State != paywall.SessionSettled {
				pending++
			}
		}
		held, _ := mpsUsage(t, ledger)
		if pending == 0 && held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sessions unsettled and %d held after the quiet period", pending, len(sessions), held)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var consumed, settled, calls int64
	for _, s := range sessions {
		if s.Consumed > s.Max.Amount {
			t.Errorf("session %s consumed %d over its maximum %d", s.ID, s.Consumed, s.Max.Amount)
		}
		if s.Settled != s.Consumed {
			t.Errorf("session %s settled %d for %d consumed (%s)", s.ID, s.Settled, s.Consumed, s.LastError)
		}
		consumed += s.Consumed
		settled += s.Settled
		calls += s.Calls
	}
	held, committed := mpsUsage(t, ledger)
	if held != 0 || committed != settled {
		t.Errorf("ledger: held %d committed %d; the sessions settled %d", held, committed, settled)
	}
	if committed > mpsCap {
		t.Errorf("committed %d over the cap %d", committed, mpsCap)
	}
	served := mpsServed(t, servedLog)
	if ok.Load() > calls || served > calls {
		t.Errorf("%d calls answered to the agent and %d served by the provider, but only %d paid", ok.Load(), served, calls)
	}
	// A call consumed and not served is one the provider died during: at
	// most the agents' concurrency per provider kill.
	if lost := calls - served; lost < 0 || lost > int64(4*kills["provider"]) {
		t.Errorf("%d calls paid but never served over %d provider kills", lost, kills["provider"])
	}
	t.Logf("%d sessions, %d calls paid (%d served), %d minor units consumed = settled = committed %d, cap %d",
		len(sessions), calls, served, consumed, committed, mpsCap)
}

func mpsSessions(t *testing.T, db *sql.DB) []paywall.SessionRecord {
	t.Helper()
	rows, err := db.Query(`SELECT id FROM prov_payment_sessions ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	ss, err := sqlstore.NewSessionStore(context.Background(), db, sqlstore.Postgres, &sqlstore.Options{TablePrefix: "prov_"})
	if err != nil {
		t.Fatal(err)
	}
	var out []paywall.SessionRecord
	for _, id := range ids {
		r, err := ss.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func mpsUsage(t *testing.T, l *budget.Ledger) (held, committed int64) {
	t.Helper()
	u, err := l.Usage(context.Background(), budget.Scope{Project: mpsProject, Provider: mpsProvider})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range u.Counters {
		if c.Counter.Window.Period() == budget.Month && c.Counter.Provider == mpsProvider {
			return c.Held, c.Committed
		}
	}
	return 0, 0
}

func mpsServed(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			n++
		}
	}
	return n
}

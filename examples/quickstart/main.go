// Command quickstart runs the whole agent provisioning journey in one
// process, with no setup: an orchestrator with a signed-in user, a
// registrar selling a domain at a one-time price and a compute platform
// with a monthly plan and a metered API, all on loopback. An agent reads
// the catalog, adds the domain (the account is created for the user),
// adds the compute plan for a user who already has an account there (the
// human approves the link in the device flow), deploys, makes metered
// HTTP 402 calls until the $100/month cap stops it, shows the spend and
// revokes everything.
//
//	go run ./examples/quickstart          # readable output
//	go run ./examples/quickstart -json    # machine output
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/examples/internal/demo"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

const (
	project = "proj_quickstart"
	agent   = "quickstart-agent"
)

// report is the -json document; each step fills its part.
type report struct {
	User      demo.User         `json:"user"`
	Project   string            `json:"project"`
	Catalog   []catalogEntry    `json:"catalog"`
	Added     []added           `json:"added"`
	Deploy    map[string]string `json:"deploy,omitempty"`
	Metered   *meteredOut       `json:"metered,omitempty"`
	Spend     []demo.Spend      `json:"spend"`
	Charges   int64             `json:"rail_total"`
	Revoked   []revokedOut      `json:"revoked"`
	OldTokens []int             `json:"old_token_status"`
	VaultLeft int               `json:"vault_left"`
}

type catalogEntry struct {
	Ref    string `json:"ref"`
	Kind   string `json:"kind"`
	Price  string `json:"price"`
	Signed bool   `json:"signed"`
}

type added struct {
	Connection *demo.Connection `json:"connection"`
	Resource   *demo.Resource   `json:"resource"`
}

type meteredOut struct {
	Calls     int          `json:"calls"`
	Paid      budget.Money `json:"paid"`
	StoppedBy string       `json:"stopped_by"`
	Detail    string       `json:"detail"`
}

type revokedOut struct {
	Ref      string `json:"ref"`
	Account  string `json:"account_id"`
	Revoked  bool   `json:"revoked"`
	Attempts int    `json:"attempts"`
}

// journey is what the steps share.
type journey struct {
	out       io.Writer
	json      bool
	orch      *demo.Orchestrator
	rail      *issuer.MemoryRail
	registrar *demo.Provider
	cloud     *demo.Provider
	rep       report
	tokens    map[string]string // ref → access token, to show revocation
	shutdown  []func()
}

type step struct {
	title string
	fn    func(ctx context.Context, j *journey) error
}

var steps = []step{
	{"Start an orchestrator and two providers", start},
	{"The agent reads the catalog", catalog},
	{"Add registrar/registrar:domain (no account yet: one is created)", addDomain},
	{"Add cloud/compute:small (the user has an account: the human approves a link)", addCompute},
	{"Deploy with the credential from the vault", deploy},
	{"Add cloud/api:inference and call it, paying per call in a metered session (HTTP 402)", meteredCalls},
	{"Spend this month", spend},
	{"Revoke everything", revoke},
}

func run(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(w)
	asJSON := fs.Bool("json", false, "print machine-readable JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	j := &journey{out: w, json: *asJSON, tokens: map[string]string{}}
	defer func() {
		for i := len(j.shutdown) - 1; i >= 0; i-- {
			j.shutdown[i]()
		}
	}()
	for i, st := range steps {
		j.printf("\n%d. %s\n", i+1, st.title)
		if err := st.fn(ctx, j); err != nil {
			return fmt.Errorf("%s: %w", st.title, err)
		}
	}
	if j.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(j.rep)
	}
	return nil
}

func (j *journey) printf(format string, a ...any) {
	if !j.json {
		fmt.Fprintf(j.out, format, a...)
	}
}

// listen reserves a loopback port; the server is started once the
// handler exists, since the orchestrator and the providers name each other.
func (j *journey) listen() (net.Listener, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	return ln, "http://" + ln.Addr().String(), nil
}

func (j *journey) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	j.shutdown = append(j.shutdown, func() { _ = srv.Close() })
}

func start(ctx context.Context, j *journey) error {
	orchLn, orchURL, err := j.listen()
	if err != nil {
		return err
	}
	regLn, regURL, err := j.listen()
	if err != nil {
		return err
	}
	cloudLn, cloudURL, err := j.listen()
	if err != nil {
		return err
	}
	_, orchKey, _ := ed25519.GenerateKey(rand.Reader)
	_, catKey, _ := ed25519.GenerateKey(rand.Reader)
	secret := make([]byte, 64)
	_, _ = rand.Read(secret)
	redemptionKeys := map[string]string{"registrar": randomKey(), "cloud": randomKey()}

	// The orchestrator: one signed-in user, her project, two trusted providers.
	j.rail = issuer.NewMemoryRail(nil)
	j.orch, err = demo.NewOrchestrator(demo.OrchestratorConfig{
		Issuer: orchURL, Key: orchKey,
		User:           demo.User{ID: "user_ada", Email: "ada@example.com", Name: "Ada"},
		PairwiseSecret: secret[:32], VaultKey: secret[32:], VaultKeyID: "vault-1",
		Trust: []discovery.TrustedProvider{
			{ID: "registrar", BaseURL: regURL, RequireSignature: true, Keys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
				{Key: catKey.Public(), KeyID: "registrar-1", Algorithm: string(jose.EdDSA), Use: "sig"}}}},
			{ID: "cloud", BaseURL: cloudURL},
		},
		Rail:           j.rail,
		RedemptionKeys: redemptionKeys,
	})
	if err != nil {
		return err
	}
	j.serve(orchLn, j.orch.Handler())
	j.rep.User, j.rep.Project = j.orch.User(), project

	// The providers: each an ordinary Go service mounting the protocol.
	j.registrar, err = demo.NewProvider(demo.ProviderConfig{
		Profile: demo.Registrar(), BaseURL: regURL, OrchestratorIssuer: orchURL,
		RedemptionKey: redemptionKeys["registrar"], CatalogKey: catKey, CatalogKeyID: "registrar-1",
	})
	if err != nil {
		return err
	}
	j.serve(regLn, j.registrar.Handler())
	j.cloud, err = demo.NewProvider(demo.ProviderConfig{
		Profile: demo.Cloud(), BaseURL: cloudURL, OrchestratorIssuer: orchURL,
		RedemptionKey: redemptionKeys["cloud"], DeviceInterval: time.Second,
	})
	if err != nil {
		return err
	}
	j.serve(cloudLn, j.cloud.Handler())
	// Ada signed up at Cloud long ago, outside the protocol.
	if _, err := j.cloud.SeedAccount(ctx, "ada@example.com"); err != nil {
		return err
	}
	j.printf("   orchestrator %s (user %s, project %s)\n", orchURL, j.rep.User.Email, project)
	j.printf("   registrar    %s (signed catalog)\n", regURL)
	j.printf("   cloud        %s (ada@example.com already has an account)\n", cloudURL)
	return nil
}

func randomKey() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return fmt.Sprintf("rk_%x", b)
}

func catalog(ctx context.Context, j *journey) error {
	if _, err := j.orch.Refresh(ctx); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(j.out, 2, 8, 2, ' ', 0)
	if !j.json {
		fmt.Fprintln(tw, "   REF\tKIND\tPRICE\tSIGNED")
	}
	for _, pc := range j.orch.Aggregator.Catalogs() {
		for _, svc := range pc.Snapshot.Catalog.Services {
			e := catalogEntry{Ref: pc.Snapshot.Catalog.Ref(svc).String(), Kind: string(svc.Kind),
				Price: demo.DescribePrice(svc), Signed: pc.Snapshot.Signed()}
			j.rep.Catalog = append(j.rep.Catalog, e)
			if !j.json {
				fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\n", e.Ref, e.Kind, e.Price, yesNo(e.Signed))
			}
		}
	}
	if j.json {
		return nil
	}
	return tw.Flush()
}

// add connects (account + token in the vault), then provisions and pays.
func (j *journey) add(ctx context.Context, req demo.ConnectRequest, name string, config string) error {
	req.Project, req.Agent = project, agent
	c, err := j.orch.Connect(ctx, req)
	if err != nil {
		return err
	}
	j.printf("   account %s at %s: %s, scopes %s\n", c.AccountID, c.Provider, c.LinkAction, strings.Join(c.Scopes, " "))
	cred, err := j.orch.Vault.Get(ctx, project, req.Ref)
	if err != nil {
		return err
	}
	j.tokens[req.Ref] = cred.AccessToken.Reveal()
	j.printf("   token stored in the vault: %v (the agent never sees it printed)\n", cred.AccessToken)
	var cfg json.RawMessage
	if config != "" {
		cfg = json.RawMessage(config)
	}
	res, err := j.orch.Add(ctx, demo.AddRequest{Project: project, Ref: req.Ref, Name: name, Config: cfg})
	if err != nil {
		return err
	}
	charged := "free"
	if res.Charged != nil {
		charged = "paid " + demo.Money(res.Charged.Amount, res.Charged.Currency) + " with a payment token"
	}
	j.printf("   resource %s %q: %s, %s\n", res.ID, res.Name, res.Status, charged)
	j.rep.Added = append(j.rep.Added, added{Connection: c, Resource: res})
	return nil
}

func addDomain(ctx context.Context, j *journey) error {
	j.printf("   the human accepts Registrar's terms; the orchestrator signs a consent receipt\n")
	return j.add(ctx, demo.ConnectRequest{Ref: "registrar/" + demo.ServiceDomain, AcceptTerms: true},
		"site-domain", `{"domain":"ada-builds.dev"}`)
}

func addCompute(ctx context.Context, j *journey) error {
	onDevice := func(ctx context.Context, l demo.DeviceLink) error {
		j.printf("   Cloud says an account exists: open %s and enter %s\n", l.VerificationURI, l.UserCode)
		// The simulated human signs in at Cloud and clicks "Allow".
		pending, err := j.cloud.ApproveDevice(ctx, l.UserCode, "ada@example.com")
		if err != nil {
			return err
		}
		j.printf("   the human, signed in at Cloud, approves the link asked by %s for %s\n", pending.ClientID, pending.Email)
		return nil
	}
	// No terms: linking an existing account needs the holder's approval, not a new acceptance.
	return j.add(ctx, demo.ConnectRequest{Ref: "cloud/" + demo.ServiceCompute, OnDevice: onDevice}, "vm", "")
}

func deploy(ctx context.Context, j *journey) error {
	ref := "cloud/" + demo.ServiceCompute
	env, err := j.orch.Vault.Env(ctx, project, ref)
	if err != nil {
		return err
	}
	client, err := j.orch.AgentClient(project, ref, budget.USD(1))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, env["CLOUD_API_URL"]+"/deployments",
		strings.NewReader(`{"app":"hello-world"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("deploy: HTTP %d", resp.StatusCode)
	}
	var out map[string]string
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out); err != nil {
		return err
	}
	j.rep.Deploy = out
	j.printf("   %s is %s at %s\n", out["app"], out["status"], out["url"])
	return nil
}

func meteredCalls(ctx context.Context, j *journey) error {
	ref := "cloud/" + demo.ServiceInference
	if err := j.add(ctx, demo.ConnectRequest{Ref: ref}, "inference", ""); err != nil {
		return err
	}
	env, err := j.orch.Vault.Env(ctx, project, ref)
	if err != nil {
		return err
	}
	// At most 5 USD per call, whatever a challenge asks.
	client, err := j.orch.AgentClient(project, ref, budget.USD(500))
	if err != nil {
		return err
	}
	m := &meteredOut{Paid: budget.USD(0)}
	for i := 0; i < 1000; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, env["CLOUD_INFERENCE_URL"], strings.NewReader(`{"prompt":"6*7"}`))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			if !errors.Is(err, payment.ErrCapExceeded) {
				return err
			}
			m.StoppedBy = "cap_exceeded"
			m.Detail = err.Error()
			var ce *budget.CapError
			if errors.As(err, &ce) {
				m.Detail = fmt.Sprintf("cap %s, used %s, asked %s",
					demo.Money(ce.Limit.Amount, ce.Limit.Currency), demo.Money(ce.Used, ce.Limit.Currency), demo.Money(ce.Requested, ce.Limit.Currency))
			}
			break
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("inference call %d: HTTP %d", i+1, resp.StatusCode)
		}
		rh, err := payment.ReceiptFromResponse(resp)
		if err != nil {
			return err
		}
		amount, err := strconv.ParseInt(rh.Amount, 10, 64)
		if err != nil {
			return fmt.Errorf("receipt amount %q: %w", rh.Amount, err)
		}
		m.Calls++
		m.Paid.Amount += amount
		m.Paid.Currency = rh.Currency
		if m.Calls <= 2 {
			j.printf("   call %d: paid %s in session %s → 200\n", m.Calls, demo.Money(amount, rh.Currency), rh.Reference)
		}
	}
	if m.StoppedBy == "" {
		return errors.New("the cap never stopped the calls")
	}
	// The calls were paid within metered sessions: one hold and one token
	// per session, each call checked locally by the provider. The provider
	// settles a session when it ends (used up, idle, expiring, or closed
	// as here): one redemption of its consumed total.
	n, err := j.cloud.Paywall.CloseSessions(ctx)
	if err != nil {
		return fmt.Errorf("settle sessions: %w", err)
	}
	j.printf("   … %d calls paid in %d sessions, %s in all\n", m.Calls, n, demo.Money(m.Paid.Amount, m.Paid.Currency))
	j.printf("   call %d refused before anything was paid: %s (%s)\n", m.Calls+1, m.StoppedBy, m.Detail)
	j.rep.Metered = m
	return nil
}

func spend(ctx context.Context, j *journey) error {
	s, err := j.orch.Spend(ctx, project)
	if err != nil {
		return err
	}
	j.rep.Spend = s
	j.rep.Charges = j.rail.Total("USD")
	tw := tabwriter.NewWriter(j.out, 2, 8, 2, ' ', 0)
	if !j.json {
		fmt.Fprintln(tw, "   PROVIDER\tSPENT\tCAP\tREMAINING")
	}
	for _, p := range s {
		limit, remaining := "none", "unlimited"
		if p.Limit != nil {
			limit = demo.Money(p.Limit.Amount, p.Limit.Currency)
		}
		if p.Remaining != nil {
			remaining = demo.Money(p.Remaining.Amount, p.Remaining.Currency)
		}
		if !j.json {
			fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\n", p.Provider, demo.Money(p.Committed, p.Currency), limit, remaining)
		}
	}
	if !j.json {
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	j.printf("   settled on the payment rail: %s (the agent never saw card data)\n", demo.Money(j.rep.Charges, "USD"))
	return nil
}

func revoke(ctx context.Context, j *journey) error {
	rep, err := j.orch.RevokeAll(ctx, project, "")
	if err != nil {
		return err
	}
	for _, r := range rep.Results {
		ref := r.Provider + "/" + r.Service
		j.rep.Revoked = append(j.rep.Revoked, revokedOut{Ref: ref, Account: r.AccountID, Revoked: r.Revoked, Attempts: r.Attempts})
		status := "revoked"
		if !r.Revoked {
			status = "FAILED: " + r.Err.Error()
		}
		j.printf("   %s (account %s): %s\n", ref, r.AccountID, status)
	}
	if len(rep.Failed()) > 0 {
		return fmt.Errorf("%d credentials not revoked", len(rep.Failed()))
	}
	// The old tokens no longer open anything.
	for _, ref := range []string{"registrar/" + demo.ServiceDomain, "cloud/" + demo.ServiceCompute} {
		p := j.registrar
		if strings.HasPrefix(ref, "cloud/") {
			p = j.cloud
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.BaseURL()+"/v1/resources", nil)
		req.Header.Set("Authorization", "Bearer "+j.tokens[ref])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		j.rep.OldTokens = append(j.rep.OldTokens, resp.StatusCode)
		j.printf("   the old %s token now gets HTTP %d\n", ref, resp.StatusCode)
	}
	left, err := j.orch.Vault.List(ctx, project, "")
	if err != nil && !errors.Is(err, vault.ErrCredentialNotFound) {
		return err
	}
	j.rep.VaultLeft = len(left)
	j.printf("   credentials left in the vault: %d\n", len(left))
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

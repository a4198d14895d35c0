package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/examples/internal/demo"
	"github.com/agentprov/agentprov/internal/safehttp"
	"github.com/agentprov/agentprov/internal/sqldb"
	"github.com/agentprov/agentprov/payment"
	"github.com/agentprov/agentprov/payment/issuer"
)

const usage = `orchestrator — an agent provisioning orchestrator (example CLI on agentprov)

Usage: orchestrator <command> [arguments] [flags]

Commands:
  init                      create the project: --email (required), --name, --project,
                            --issuer URL (where "serve" is reachable; default http://127.0.0.1:7780),
                            --provider URL or id=URL (repeatable), --redemption-key id=KEY (repeatable;
                            generated and shown once when absent)
  catalog [filter]          list the trusted providers' services (filter: text, provider or @category);
                            texts a provider changed since they were accepted are marked untrusted
  catalog accept PROVIDER   accept a provider's quarantined catalog and changed texts; needs the human
  add provider/service      provision a service: --config JSON, --name NAME (unique in the project:
                            a name another add holds is a name_conflict; rerunning the same add
                            after a failure finishes it and never makes a second resource)
  provider add URL          trust one more provider (URL or id=URL), fetched as init does;
                            --redemption-key id=KEY, generated and shown once when absent
  status                    project, providers, resources and credentials (no secrets)
  env                       environment variables of the credentials, redacted unless --reveal;
                            --provider P limits them
  billing show              spending caps and this month's use per provider
  billing update            set a monthly cap: --limit USD [--provider P]; needs the human
  spend                     this month's charges per provider
  rotate <resource>         replace a resource's credential and revoke the old token
  remove <resource>         delete a resource at its provider; a pending one (an add that was
                            interrupted) is cleaned up as gc does
  gc                        clean up every unfinished add: what its provider made under the add's
                            idempotency key is removed there, and the name is given back
  revoke                    revoke every credential at the providers (--provider P for one)
  serve                     the orchestrator's public endpoints (JWKS, payment redemption): --addr
  help                      this text

Global flags:
  --dir DIR            project directory (default .agentprov in the working directory)
  --json               machine output: {"ok":…,"data":…,"error":{"code","message","details"}} on stdout
  --non-interactive    never prompt (default when stdin is not a terminal)
  --interactive        prompt on stdin even when it is not a terminal
  --accept-terms       the human accepts the provider's terms of service (add)
  --confirm-paid       the human confirms a paid service (add)
  --human              the human, not an agent, runs this command (billing update, catalog accept)
  --quiet              no progress lines on stderr

In non-interactive mode nothing that needs the human happens without the
flag a human set: terms, paid services and cap changes are refused with
exit code 4.

Exit codes:
  0  success
  1  any other error
  2  bad command line (usage)
  3  no project here: run init
  4  needs the human: terms, a paid service or a cap change need a flag a human set
  5  refused by a spending cap or the per-call ceiling
  6  a provider could not be reached or refused
  7  unknown provider, service or resource
  8  the action needs the user, not the agent (the user declined)
`

// opts are the parsed flags of one invocation.
type opts struct {
	dir                   string
	json, nonInteractive  bool
	interactive           bool
	acceptTerms, confirm  bool
	human, quiet, reveal  bool
	config, name          string
	email, userName, proj string
	issuer, addr, limit   string
	provider              string
	providers, redeemKeys multiFlag
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (o *opts) flags(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("orchestrator", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.dir, "dir", ".agentprov", "")
	fs.BoolVar(&o.json, "json", false, "")
	fs.BoolVar(&o.nonInteractive, "non-interactive", false, "")
	fs.BoolVar(&o.interactive, "interactive", false, "")
	fs.BoolVar(&o.acceptTerms, "accept-terms", false, "")
	fs.BoolVar(&o.confirm, "confirm-paid", false, "")
	fs.BoolVar(&o.human, "human", false, "")
	fs.BoolVar(&o.quiet, "quiet", false, "")
	fs.BoolVar(&o.reveal, "reveal", false, "")
	fs.StringVar(&o.config, "config", "", "")
	fs.StringVar(&o.name, "name", "", "")
	fs.StringVar(&o.email, "email", "", "")
	fs.StringVar(&o.userName, "user-name", "", "")
	fs.StringVar(&o.proj, "project", "", "")
	fs.StringVar(&o.issuer, "issuer", "http://127.0.0.1:7780", "")
	fs.StringVar(&o.addr, "addr", "", "")
	fs.StringVar(&o.limit, "limit", "", "")
	fs.Var(&o.providers, "provider", "")
	return fs
}

// parse accepts flags anywhere on the line; --provider is repeatable for
// init and single elsewhere.
func parse(args []string, stderr io.Writer) (*opts, []string, error) {
	o := &opts{}
	fs := o.flags(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, fail(exitUsage, "usage", "%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(o.providers) == 1:
		o.provider = o.providers[0]
	case len(o.providers) > 1 && (len(pos) == 0 || pos[0] != "init"):
		return nil, nil, fail(exitUsage, "usage", "--provider is repeatable only for init")
	}
	return o, pos, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, os.Stdin, stdout, stderr)
}

func runWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// --redemption-key is repeatable and only for init; pull it out first.
	var keys multiFlag
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--redemption-key" || a == "-redemption-key":
			if i+1 >= len(args) {
				return (&output{json: slices.Contains(args, "--json"), stdout: stdout, stderr: stderr}).failure(fail(exitUsage, "usage", "--redemption-key needs a value"))
			}
			keys = append(keys, args[i+1])
			i++
		case strings.HasPrefix(a, "--redemption-key="):
			keys = append(keys, strings.TrimPrefix(a, "--redemption-key="))
		default:
			rest = append(rest, a)
		}
	}
	// --help and -h anywhere mean "help" for the command on the line.
	wantHelp := false
	rest = slices.DeleteFunc(rest, func(a string) bool {
		h := a == "--help" || a == "-h" || a == "-help"
		wantHelp = wantHelp || h
		return h
	})
	o, pos, err := parse(rest, stderr)
	switch {
	case err != nil || !wantHelp:
	case len(pos) == 1 && pos[0] == "help":
		pos = []string{"help", "help"}
	case len(pos) == 0 || pos[0] != "help":
		pos = append([]string{"help"}, pos...)
	}
	out := &output{stdout: stdout, stderr: stderr}
	if err != nil {
		out.json = slices.Contains(args, "--json")
		return out.failure(err)
	}
	o.redeemKeys = keys
	out.json, out.quiet = o.json, o.quiet
	if len(pos) == 0 || pos[0] == "help" {
		if len(pos) == 0 {
			fmt.Fprint(stderr, usage)
			return out.failure(fail(exitUsage, "usage", "no command"))
		}
		text := usage
		if len(pos) > 1 {
			var ok bool
			if text, ok = commandHelp(pos[1]); !ok {
				return out.failure(fail(exitUsage, "usage", "unknown command %q (see orchestrator help)", pos[1]))
			}
		}
		out.result(map[string]string{"usage": text}, func(w io.Writer) { fmt.Fprint(w, text) })
		return exitOK
	}
	c := &cli{o: o, out: out, stdin: bufio.NewReader(stdin), interactive: !o.nonInteractive && !o.json && (o.interactive || isInteractive())}
	if err := c.dispatch(ctx, pos[0], pos[1:]); err != nil {
		return out.failure(classify(err))
	}
	return exitOK
}

// commandHelp is the help of one command: its entries of the command
// list (with their continuation lines), then the global flags and exit
// codes. It reports false for a command the list does not name.
func commandHelp(cmd string) (string, bool) {
	_, tail, _ := strings.Cut(usage, "\nCommands:\n")
	list, flags, _ := strings.Cut(tail, "\nGlobal flags:")
	var b strings.Builder
	in := false
	for _, line := range strings.Split(list, "\n") {
		switch {
		case strings.HasPrefix(line, "  "+cmd+" ") || line == "  "+cmd:
			in = true
			b.WriteString("Usage: orchestrator " + strings.TrimSpace(line[2:]) + "\n")
		case in && strings.HasPrefix(line, "                            "):
			b.WriteString("    " + strings.TrimSpace(line) + "\n")
		default:
			in = false
		}
	}
	if b.Len() == 0 {
		return "", false
	}
	return b.String() + "\nGlobal flags:" + flags, true
}

// cli is one invocation.
type cli struct {
	o           *opts
	out         *output
	stdin       *bufio.Reader
	interactive bool

	state *projectState
	db    *sql.DB
	orch  *demo.Orchestrator
}

func (c *cli) dispatch(ctx context.Context, cmd string, args []string) error {
	if cmd == "init" {
		return c.init(ctx, args)
	}
	if cmd == "provider" {
		if len(args) != 2 || args[0] != "add" {
			return fail(exitUsage, "usage", "provider add needs one URL (or id=URL)")
		}
		return c.providerAdd(ctx, args[1])
	}
	if !slices.Contains([]string{"catalog", "add", "status", "env", "billing", "spend", "rotate", "remove", "gc", "revoke", "serve"}, cmd) {
		return fail(exitUsage, "usage", "unknown command %q (see orchestrator help)", cmd)
	}
	if err := c.open(ctx); err != nil {
		return err
	}
	defer c.db.Close()
	switch cmd {
	case "catalog":
		return c.catalog(ctx, args)
	case "add":
		return c.add(ctx, args)
	case "status":
		return c.status(ctx)
	case "env":
		return c.env(ctx)
	case "billing":
		if len(args) == 0 {
			return fail(exitUsage, "usage", "billing needs show or update")
		}
		switch args[0] {
		case "show":
			return c.billingShow(ctx)
		case "update":
			return c.billingUpdate(ctx)
		}
		return fail(exitUsage, "usage", "unknown billing command %q", args[0])
	case "spend":
		return c.spend(ctx)
	case "rotate":
		return c.rotate(ctx, args)
	case "remove":
		return c.remove(ctx, args)
	case "gc":
		return c.gc(ctx)
	case "revoke":
		return c.revoke(ctx)
	case "serve":
		return c.serve(ctx)
	}
	return fail(exitUsage, "usage", "unknown command %q (see orchestrator help)", cmd)
}

// classify maps errors to the envelope's codes and exit codes.
func classify(err error) error {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce
	}
	var te *demo.TermsError
	var capErr *budget.CapError
	var pe *demo.ProviderError
	var ve *catalogschema.ValidationError
	var nc *demo.NameConflictError
	switch {
	case errors.As(err, &te):
		ce := wrap(exitNeedsHuman, "terms_acceptance_required", err, "the human must accept the terms")
		ce.Hint = "the human accepts them by rerunning with --accept-terms"
		return ce
	case errors.Is(err, demo.ErrNeedsHuman):
		return wrap(exitNeedsHuman, "human_required", err, "needs the human")
	case errors.Is(err, payment.ErrCallCeiling):
		return wrap(exitPayment, "call_ceiling", err, "refused by the per-call ceiling")
	case errors.As(err, &capErr), errors.Is(err, payment.ErrCapExceeded), errors.Is(err, budget.ErrCapExceeded):
		return wrap(exitPayment, "cap_exceeded", err, "refused by a spending cap")
	case errors.Is(err, demo.ErrNotFound), errors.Is(err, vault.ErrCredentialNotFound), errors.Is(err, discovery.ErrUnknownService), errors.Is(err, discovery.ErrUnknownProvider):
		return wrap(exitNotFound, "not_found", err, "not found")
	case errors.As(err, &ve):
		return wrap(exitUsage, "invalid_config", err, "invalid configuration")
	case errors.As(err, &nc):
		return &cliError{Code: "name_conflict", Exit: exitError, Msg: nc.Error(), Details: map[string]any{
			"name": nc.Name, "service": nc.Service, "state": nc.State, "in_flight": nc.InFlight,
			"same_request": nc.SameRequest, "retry_after_seconds": int(nc.RetryAfter.Round(time.Second) / time.Second)}}
	case errors.Is(err, demo.ErrExists):
		return wrap(exitError, "already_exists", err, "already exists")
	case errors.As(err, &pe) && (pe.Status >= 500 || pe.Status == http.StatusPaymentRequired):
		// Providers fetch the orchestrator's keys and redeem payments at
		// "orchestrator serve": the usual cause of these answers.
		return wrap(exitProvider, "provider_error", err, "provider unavailable or cannot reach this orchestrator (is \"orchestrator serve\" running?)")
	case errors.As(err, &pe):
		return wrap(exitProvider, "provider_error", err, "provider")
	}
	return wrap(exitError, "error", err, "failed")
}

// confirm asks the human, or refuses when nobody can answer.
func (c *cli) confirm(flagSet bool, code, question, flagName string) error {
	if flagSet {
		return nil
	}
	if !c.interactive {
		return fail(exitNeedsHuman, code, "%s: a human must confirm; rerun with %s", question, flagName)
	}
	fmt.Fprintf(c.out.stderr, "%s [y/N] ", question)
	line, err := c.stdin.ReadString('\n')
	if err != nil && strings.TrimSpace(line) == "" {
		// Nobody answered: that is not the human saying no.
		return fail(exitNeedsHuman, code, "%s: no answer; rerun with %s", question, flagName)
	}
	if a := strings.ToLower(strings.TrimSpace(line)); a == "y" || a == "yes" {
		return nil
	}
	return fail(exitUnauthorized, "declined", "%s: declined", question)
}

// --- project state -------------------------------------------------------

type projectState struct {
	Project string    `json:"project"`
	User    demo.User `json:"user"`
	Issuer  string    `json:"issuer"`
	// KeyID is the signing key's kid; empty (every new project) means
	// its RFC 7638 thumbprint. Projects made before 0.2 say "orch-1".
	KeyID          string            `json:"key_id,omitempty"`
	Providers      []providerEntry   `json:"providers"`
	RedemptionKeys map[string]string `json:"redemption_keys"`
	CreatedAt      time.Time         `json:"created_at"`
}

type providerEntry struct {
	ID      string `json:"id"`
	BaseURL string `json:"base_url"`
}

func (c *cli) path(name string) string { return filepath.Join(c.o.dir, name) }

func (c *cli) init(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return fail(exitUsage, "usage", "init takes no arguments")
	}
	if c.o.email == "" || !strings.Contains(c.o.email, "@") {
		return fail(exitUsage, "usage", "init needs --email of the signed-in user")
	}
	if _, err := safehttp.CheckURL(c.o.issuer); err != nil {
		return fail(exitUsage, "usage", "--issuer: %v", err)
	}
	if _, err := os.Stat(c.path("project.json")); err == nil {
		return fail(exitError, "already_initialized", "%s already holds a project", c.o.dir)
	}
	st := &projectState{Project: c.o.proj, Issuer: strings.TrimSuffix(c.o.issuer, "/"),
		RedemptionKeys: map[string]string{}, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	if st.Project == "" {
		st.Project = "proj_" + randomHex(8)
	}
	st.User = demo.User{ID: "user_" + randomHex(8), Email: c.o.email, Name: c.o.userName}
	for _, p := range c.o.providers {
		e, err := c.resolveProvider(ctx, p)
		if err != nil {
			return err
		}
		st.Providers = append(st.Providers, e)
	}
	generated := map[string]string{}
	for _, kv := range c.o.redeemKeys {
		id, key, ok := strings.Cut(kv, "=")
		if !ok || id == "" || len(key) < 16 {
			return fail(exitUsage, "usage", "--redemption-key wants id=KEY with a key of at least 16 characters")
		}
		st.RedemptionKeys[id] = key
	}
	for _, p := range st.Providers {
		if st.RedemptionKeys[p.ID] == "" {
			st.RedemptionKeys[p.ID] = "rk_" + randomHex(24)
			generated[p.ID] = st.RedemptionKeys[p.ID]
		}
	}
	if err := os.MkdirAll(c.o.dir, 0o700); err != nil {
		return err
	}
	for name, size := range map[string]int{"orchestrator.key": ed25519.SeedSize, "vault.key": 32, "pairwise.key": 32} {
		b := make([]byte, size)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		if err := os.WriteFile(c.path(name), b, 0o600); err != nil {
			return err
		}
	}
	doc, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(c.path("project.json"), doc, 0o600); err != nil {
		return err
	}
	c.state = st
	if err := c.openDB(ctx); err != nil {
		return err
	}
	c.db.Close()
	data := map[string]any{"project": st.Project, "user": st.User, "issuer": st.Issuer, "dir": c.o.dir,
		"providers": st.Providers, "generated_redemption_keys": generated}
	c.out.result(data, func(w io.Writer) {
		fmt.Fprintf(w, "Initialized project %s for %s in %s\n", st.Project, st.User.Email, c.o.dir)
		fmt.Fprintf(w, "Orchestrator issuer %s (run \"orchestrator serve\" so providers can reach it)\n", st.Issuer)
		for _, p := range st.Providers {
			fmt.Fprintf(w, "Trusted provider %s at %s\n", p.ID, p.BaseURL)
		}
		for id, k := range generated {
			fmt.Fprintf(w, "Redemption key for %s (give it to the provider; shown once): %s\n", id, k)
		}
	})
	return nil
}

// providerAdd trusts one more provider in an existing project, fetched
// with the same safe fetcher as init. project.json is changed under an
// exclusive lock (flock, released by the kernel if the process dies) and
// replaced atomically, so concurrent commands never lose a provider or
// see a torn file.
func (c *cli) providerAdd(ctx context.Context, v string) error {
	if _, err := os.Stat(c.path("project.json")); errors.Is(err, os.ErrNotExist) {
		return fail(exitNotInit, "project_not_initialized", "no project in %s: run orchestrator init", c.o.dir)
	}
	e, err := c.resolveProvider(ctx, v)
	if err != nil {
		return err
	}
	lock, err := os.OpenFile(c.path("project.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	doc, err := os.ReadFile(c.path("project.json"))
	if err != nil {
		return err
	}
	var st projectState
	if err := json.Unmarshal(doc, &st); err != nil {
		return fmt.Errorf("%s: %w", c.path("project.json"), err)
	}
	if slices.ContainsFunc(st.Providers, func(p providerEntry) bool { return p.ID == e.ID }) {
		return fail(exitError, "provider_exists", "provider %s is already trusted in this project", e.ID)
	}
	st.Providers = append(st.Providers, e)
	generated := ""
	if st.RedemptionKeys == nil {
		st.RedemptionKeys = map[string]string{}
	}
	for _, kv := range c.o.redeemKeys {
		if id, key, ok := strings.Cut(kv, "="); ok && id == e.ID {
			if len(key) < 16 {
				return fail(exitUsage, "usage", "--redemption-key wants id=KEY with a key of at least 16 characters")
			}
			st.RedemptionKeys[id] = key
		}
	}
	if st.RedemptionKeys[e.ID] == "" {
		generated = "rk_" + randomHex(24)
		st.RedemptionKeys[e.ID] = generated
	}
	out, _ := json.MarshalIndent(&st, "", "  ")
	if err := c.writeAtomic("project.json", out); err != nil {
		return err
	}
	data := map[string]any{"provider": e}
	if generated != "" {
		data["generated_redemption_key"] = generated
	}
	c.out.result(data, func(w io.Writer) {
		fmt.Fprintf(w, "Trusted provider %s at %s\n", e.ID, e.BaseURL)
		if generated != "" {
			fmt.Fprintf(w, "Redemption key for %s (give it to the provider; shown once): %s\n", e.ID, generated)
		}
	})
	return nil
}

// resolveProvider takes id=URL, or a URL whose metadata names the id.
func (c *cli) resolveProvider(ctx context.Context, v string) (providerEntry, error) {
	if id, u, ok := strings.Cut(v, "="); ok && !strings.Contains(id, "/") {
		if _, err := safehttp.CheckURL(u); err != nil {
			return providerEntry{}, fail(exitUsage, "usage", "--provider %s: %v", v, err)
		}
		return providerEntry{ID: id, BaseURL: strings.TrimSuffix(u, "/")}, nil
	}
	if _, err := safehttp.CheckURL(v); err != nil {
		return providerEntry{}, fail(exitUsage, "usage", "--provider %s: %v", v, err)
	}
	base := strings.TrimSuffix(v, "/")
	c.out.progress("fetching %s%s", base, catalogschema.MetadataPath)
	// The library's safe fetcher: HTTPS-or-loopback, redirects within the
	// origin only, bounded body and time, the metadata schema.
	meta, err := discovery.FetchMetadata(ctx, nil, base, &discovery.FetchOptions{Timeout: 10 * time.Second})
	if err != nil {
		return providerEntry{}, &demo.ProviderError{Op: "serve its metadata", Err: err}
	}
	return providerEntry{ID: meta.ProviderID, BaseURL: base}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (c *cli) openDB(ctx context.Context) error {
	db, err := sqldb.OpenSQLite(c.path("state.db"))
	if err != nil {
		return err
	}
	c.db = db
	return nil
}

// open loads the project and assembles the orchestrator over its SQLite state.
func (c *cli) open(ctx context.Context) error {
	doc, err := os.ReadFile(c.path("project.json"))
	if errors.Is(err, os.ErrNotExist) {
		return fail(exitNotInit, "project_not_initialized", "no project in %s: run orchestrator init", c.o.dir)
	}
	if err != nil {
		return err
	}
	var st projectState
	if err := json.Unmarshal(doc, &st); err != nil {
		return fmt.Errorf("%s: %w", c.path("project.json"), err)
	}
	c.state = &st
	read := func(name string, size int) ([]byte, error) {
		b, err := os.ReadFile(c.path(name))
		if err == nil && len(b) != size {
			err = fmt.Errorf("%s: wrong size", name)
		}
		return b, err
	}
	seed, err := read("orchestrator.key", ed25519.SeedSize)
	if err != nil {
		return err
	}
	vaultKey, err := read("vault.key", 32)
	if err != nil {
		return err
	}
	pairwise, err := read("pairwise.key", 32)
	if err != nil {
		return err
	}
	if err := c.openDB(ctx); err != nil {
		return err
	}
	cfg := demo.OrchestratorConfig{
		Issuer: st.Issuer, Key: ed25519.NewKeyFromSeed(seed), KeyID: st.KeyID, User: st.User,
		PairwiseSecret: pairwise, VaultKey: vaultKey, VaultKeyID: "vault-1",
		RedemptionKeys: st.RedemptionKeys, Logger: slog.New(slog.DiscardHandler),
	}
	for _, p := range st.Providers {
		cfg.Trust = append(cfg.Trust, discovery.TrustedProvider{ID: p.ID, BaseURL: p.BaseURL})
	}
	if err := demo.OrchestratorSQL(ctx, c.db, &cfg); err != nil {
		c.db.Close()
		return err
	}
	if c.orch, err = demo.NewOrchestrator(cfg); err != nil {
		c.db.Close()
		return err
	}
	if err := c.restoreCatalog(); err != nil {
		c.db.Close()
		return err
	}
	return nil
}

// catalogStateFile keeps the aggregated catalog between commands: the
// accepted copy of every provider, what is pending, quarantines, pinned
// keys and the text an agent has accepted. Without it every command would
// be a first contact and would accept any change (a ×100 price included).
const catalogStateFile = "catalog-state.json"

// restoreCatalog loads the aggregator's state the last command left. A
// state that does not restore is an error, never a silent first contact.
func (c *cli) restoreCatalog() error {
	b, err := os.ReadFile(c.path(catalogStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil // a new project: first contact
	}
	if err != nil {
		return err
	}
	var st discovery.State
	if err := json.Unmarshal(b, &st); err != nil {
		return &cliError{Code: "catalog_state_invalid", Exit: exitError,
			Msg: fmt.Sprintf("%s is not a catalog state (%v); remove it to start from first contact", c.path(catalogStateFile), err)}
	}
	if err := c.orch.Aggregator.Restore(&st); err != nil {
		return &cliError{Code: "catalog_state_invalid", Exit: exitError,
			Msg: fmt.Sprintf("%s cannot be restored (%v); remove it to start from first contact", c.path(catalogStateFile), err)}
	}
	return nil
}

// saveCatalog writes the aggregator's state atomically (a temporary file
// renamed over the old one, 0600), so a crash or a concurrent command
// leaves either the old state or the new one, never a torn file.
func (c *cli) saveCatalog() error {
	st, err := c.orch.Aggregator.State()
	if err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return c.writeAtomic(catalogStateFile, b)
}

// writeAtomic replaces the project file name with data: a temporary file
// (0600) written and synced, then renamed over the old one, so a crash or
// a concurrent reader sees the old content or the new, never a torn file.
func (c *cli) writeAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(c.o.dir, name+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), c.path(name))
}

// providerStatus is one provider's line of a catalog refresh, as reported
// in --json output: what the refresh did and, on failure, why.
type providerStatus struct {
	Provider string `json:"provider"`
	// Status is updated, unchanged, failed or quarantined.
	Status string `json:"status"`
	// Code classifies a failure (timeout, signature_invalid, …).
	Code string `json:"code,omitempty"`
	// Error is the failure in one sentence.
	Error string `json:"error,omitempty"`
	// Usable says whether this provider's services are listed: a failed
	// provider still is when an earlier accepted catalog is served stale.
	Usable bool `json:"usable"`
	// UntrustedTexts counts the provider's agent-readable texts changed
	// since the human last accepted them ("catalog accept"): the services
	// holding them are marked untrusted.
	UntrustedTexts int `json:"untrusted_texts,omitempty"`
}

// refresh fetches every provider's catalog and reports each one. It fails
// (catalog_unavailable, exit 6, every provider's line in the error's
// details) when providers are configured and none has a usable catalog, so
// an empty listing never passes for success.
func (c *cli) refresh(ctx context.Context) ([]providerStatus, error) {
	c.out.progress("fetching catalogs of %d providers", len(c.state.Providers))
	rep, err := c.orch.Refresh(ctx)
	if serr := c.saveCatalog(); serr != nil {
		return nil, fmt.Errorf("saving the catalog state: %w", serr)
	}
	statuses := make([]providerStatus, 0, len(c.state.Providers))
	usable := 0
	if rep != nil {
		for _, r := range rep.Results {
			st := providerStatus{Provider: r.ID, Status: string(r.Status), Code: r.Code, Usable: r.Snapshot != nil,
				UntrustedTexts: len(r.UntrustedText)}
			if r.Err != nil {
				st.Error = r.Err.Error()
				c.out.progress("provider %s: %v", r.ID, r.Err)
			}
			if st.Usable {
				usable++
			}
			statuses = append(statuses, st)
		}
	}
	if len(c.state.Providers) > 0 && usable == 0 {
		return statuses, &cliError{Code: "catalog_unavailable", Exit: exitProvider,
			Msg: fmt.Sprintf("no provider's catalog could be fetched (%d tried)", len(c.state.Providers)),
			Err: err, Details: map[string]any{"providers": statuses}}
	}
	if err != nil {
		return statuses, err
	}
	return statuses, nil
}

// --- commands ------------------------------------------------------------

type catalogRow struct {
	Ref         string                `json:"ref"`
	Provider    string                `json:"provider"`
	Kind        string                `json:"kind"`
	Description string                `json:"description"`
	Price       string                `json:"price"`
	Prices      []catalogschema.Price `json:"prices"`
	Categories  []string              `json:"categories,omitempty"`
	Stale       bool                  `json:"stale,omitempty"`
	// ConfigSchema is the JSON Schema that add's --config must satisfy
	// (the service's configuration_schema), when it has one.
	ConfigSchema json.RawMessage `json:"config_schema,omitempty"`
	// Untrusted is set when the provider changed texts of this service
	// (description, llm_context, …) since the human last accepted them:
	// those texts are unreviewed provider data, a prompt-injection
	// channel, until "catalog accept PROVIDER". UntrustedFields names them.
	Untrusted       bool     `json:"untrusted,omitempty"`
	UntrustedFields []string `json:"untrusted_fields,omitempty"`
}

func (c *cli) catalog(ctx context.Context, args []string) error {
	if len(args) == 2 && args[0] == "accept" {
		return c.catalogAccept(ctx, args[1])
	}
	if len(args) > 1 {
		return fail(exitUsage, "usage", "catalog takes at most one filter (or: catalog accept PROVIDER)")
	}
	statuses, err := c.refresh(ctx)
	if err != nil {
		return err
	}
	var f discovery.Filter
	if len(args) == 1 {
		switch a := args[0]; {
		case strings.HasPrefix(a, "@"):
			f.Category = a[1:]
		case slices.ContainsFunc(c.state.Providers, func(p providerEntry) bool { return p.ID == a }):
			f.Provider = a
		default:
			f.Text = a
		}
	}
	rows := []catalogRow{}
	for _, e := range c.orch.Aggregator.Search(f) {
		rows = append(rows, catalogRow{Ref: e.Ref.String(), Provider: e.Provider, Kind: string(e.Service.Kind),
			Description: e.Service.Description, Price: demo.DescribePrice(e.Service), Prices: e.Service.Prices,
			Categories: e.Service.Categories, Stale: e.Stale, ConfigSchema: e.Service.ConfigurationSchema,
			Untrusted: len(e.UntrustedText) > 0, UntrustedFields: textFields(e.UntrustedText)})
	}
	c.out.result(map[string]any{"services": rows, "providers": statuses}, func(w io.Writer) {
		for _, st := range statuses {
			if st.Error != "" {
				fmt.Fprintf(w, "provider %s %s (%s): %s\n", st.Provider, st.Status, st.Code, st.Error)
			}
		}
		for _, st := range statuses {
			if st.UntrustedTexts > 0 {
				fmt.Fprintf(w, "provider %s changed %d texts since you accepted them (marked UNREVIEWED): read them, then run \"orchestrator catalog accept %s --human\"\n",
					st.Provider, st.UntrustedTexts, st.Provider)
			}
		}
		t := [][]string{{"REF", "KIND", "PRICE", "DESCRIPTION"}}
		for _, r := range rows {
			// Descriptions are provider text: quoted, as data.
			d := strconv.Quote(r.Description)
			if r.Untrusted {
				d = "UNREVIEWED " + d
			}
			t = append(t, []string{r.Ref, r.Kind, r.Price, d})
		}
		table(w, t)
	})
	return nil
}

// textFields lists the distinct fields of changes, in order.
func textFields(changes []discovery.TextChange) []string {
	var out []string
	for _, ch := range changes {
		if !slices.Contains(out, ch.Field) {
			out = append(out, ch.Field)
		}
	}
	return out
}

// catalogAccept is the human accepting what a provider changed: its
// quarantined catalog (a price rise beyond the drift policy, say) becomes
// the accepted one, and its changed texts stop being marked untrusted. An
// agent may not do this: it would be trusting the text it is asked to
// distrust.
func (c *cli) catalogAccept(ctx context.Context, provider string) error {
	if _, err := c.refresh(ctx); err != nil {
		return err
	}
	view, err := c.orch.Aggregator.Provider(provider)
	if errors.Is(err, discovery.ErrUnknownProvider) {
		return fmt.Errorf("%w: provider %q", demo.ErrNotFound, provider)
	} else if err != nil {
		return err
	}
	what := fmt.Sprintf("%d changed texts", len(view.UntrustedText))
	if view.Quarantined {
		what = "a quarantined catalog and " + what
	}
	if !view.Quarantined && len(view.UntrustedText) == 0 {
		return &cliError{Code: "nothing_to_accept", Exit: exitUsage, Msg: fmt.Sprintf("provider %s has no change waiting to be accepted", provider)}
	}
	if err := c.confirm(c.o.human, "human_required", fmt.Sprintf("Accept %s from %s", what, provider), "--human"); err != nil {
		return err
	}
	if err := c.orch.Aggregator.Accept(ctx, provider); err != nil {
		return err
	}
	if err := c.saveCatalog(); err != nil {
		return fmt.Errorf("saving the catalog state: %w", err)
	}
	c.out.result(map[string]any{"provider": provider, "quarantine_lifted": view.Quarantined, "texts_accepted": len(view.UntrustedText)},
		func(w io.Writer) { fmt.Fprintf(w, "Accepted %s from %s.\n", what, provider) })
	return nil
}

func (c *cli) add(ctx context.Context, args []string) (err error) {
	if len(args) != 1 {
		return fail(exitUsage, "usage", "add needs one provider/service")
	}
	ref, err := catalogschema.ParseRef(args[0])
	if err != nil {
		return fail(exitUsage, "usage", "%v", err)
	}
	var config json.RawMessage
	if c.o.config != "" {
		if !json.Valid([]byte(c.o.config)) {
			return fail(exitUsage, "usage", "--config is not valid JSON")
		}
		config = json.RawMessage(c.o.config)
	}
	// The name first, before anything reaches a provider: one atomic
	// put-if-absent in the state, holding the add's idempotency key. A
	// concurrent add of the name gets name_conflict and does nothing; a
	// retry of this add after a failure takes the reservation over and
	// finishes it under the same key.
	resv, err := c.orch.Reserve(ctx, demo.ReserveRequest{Project: c.state.Project, Ref: ref.String(), Name: c.o.name, Config: config})
	if err != nil {
		return err
	}
	defer func() { resv.Finish(ctx, err) }()
	if !resv.Fresh {
		c.out.progress("resuming the unfinished add of %q", resv.Name)
	}
	if _, err := c.refresh(ctx); err != nil {
		return err
	}
	entry, err := c.orch.Aggregator.Lookup(ref.String())
	if err != nil {
		return fmt.Errorf("%w: %s: %v", demo.ErrNotFound, ref, err)
	}
	if err := entry.Service.ValidateConfig(orEmpty(config)); err != nil {
		return err
	}
	if len(entry.Service.Prices) > 0 || entry.Service.Pricing.Type == catalogschema.PricingPaid {
		if err := c.confirm(c.o.confirm, "paid_service_confirmation_required",
			fmt.Sprintf("%s is a paid service (%s)", ref, demo.DescribePrice(entry.Service)), "--confirm-paid"); err != nil {
			return err
		}
	}
	// The caps are checked before any provider is contacted: a price the
	// remaining cap cannot cover is refused here, with the same problem
	// type the reservation itself would give. (A resumed add may already
	// hold its reservation, which the usage counts: it goes on to the
	// ledger's own check.)
	if resv.Fresh {
		if err := c.checkCapLocally(ctx, entry.Provider, entry.Service); err != nil {
			return err
		}
	}
	stopWait := func() {}
	req := demo.ConnectRequest{Project: c.state.Project, Ref: ref.String(), AcceptTerms: c.o.acceptTerms, Agent: "orchestrator-cli",
		OnDevice: func(ctx context.Context, l demo.DeviceLink) error {
			// The human approves at the provider; we only show where.
			fmt.Fprintf(c.out.stderr, "An account for %s exists at %s. To link it, open %s and enter the code %s (expires in %ds)\n",
				c.state.User.Email, l.Provider, l.VerificationURI, l.UserCode, l.ExpiresIn)
			c.out.progress("waiting for the approval at %s", l.Provider)
			stopWait = c.out.waiting("waiting for the approval at "+l.Provider, time.Now().Add(time.Duration(l.ExpiresIn)*time.Second))
			return nil
		}}
	c.out.progress("requesting an account at %s for %s", entry.Provider, c.state.User.Email)
	conn, err := c.orch.Connect(ctx, req)
	stopWait()
	stopWait = func() {}
	var te *demo.TermsError
	if errors.As(err, &te) && c.interactive {
		if cerr := c.confirm(false, "terms_acceptance_required",
			fmt.Sprintf("Do you accept %s's terms of service (%s, version %s)?", te.Provider, te.URL, te.Version), "--accept-terms"); cerr != nil {
			return cerr
		}
		req.AcceptTerms = true
		conn, err = c.orch.Connect(ctx, req)
		stopWait()
	}
	if err != nil {
		return err
	}
	c.out.progress("account %s (%s); credential stored in the vault", conn.AccountID, conn.LinkAction)
	if amount, currency := demo.Upfront(entry.Service); amount > 0 {
		c.out.progress("provisioning and paying %s", demo.Money(amount, currency))
	} else {
		c.out.progress("provisioning")
	}
	res, err := c.orch.Add(ctx, demo.AddRequest{Project: c.state.Project, Ref: ref.String(), Name: resv.Name, Config: config, Reservation: resv})
	if err != nil {
		return err
	}
	c.out.result(map[string]any{"resource": res, "connection": conn}, func(w io.Writer) {
		charged := "free"
		if res.Charged != nil {
			charged = "charged " + demo.Money(res.Charged.Amount, res.Charged.Currency)
		}
		fmt.Fprintf(w, "Added %s as %q (%s, %s); account %s (%s)\n", res.Service, res.Name, res.ID, charged, conn.AccountID, conn.LinkAction)
		fmt.Fprintln(w, "Run \"orchestrator env\" to see its environment.")
	})
	return nil
}

// checkCapLocally refuses a service whose up-front price does not fit
// under every cap of the project and provider now (*budget.CapError,
// cap_exceeded). The ledger checks again, atomically, when it reserves.
func (c *cli) checkCapLocally(ctx context.Context, provider string, svc *catalogschema.Service) error {
	amount, currency := demo.Upfront(svc)
	if amount <= 0 {
		return nil
	}
	u, err := c.orch.Ledger.Usage(ctx, budget.Scope{Project: c.state.Project, Provider: provider})
	if err != nil {
		return err
	}
	for _, k := range u.Counters {
		if k.Limit == nil || k.Limit.Currency != currency {
			continue
		}
		used := k.Committed + k.Held + k.Arrears
		if used+amount > k.Limit.Amount {
			return &budget.CapError{Counter: k.Counter, Limit: *k.Limit, Used: used, Requested: amount}
		}
	}
	return nil
}

func orEmpty(c json.RawMessage) json.RawMessage {
	if len(c) == 0 {
		return json.RawMessage(`{}`)
	}
	return c
}

func (c *cli) status(ctx context.Context) error {
	resources, err := c.orch.Resources.List(ctx, c.state.Project)
	if err != nil {
		return err
	}
	creds, err := c.orch.Vault.List(ctx, c.state.Project, "")
	if err != nil {
		return err
	}
	type credOut struct {
		Service    string    `json:"service"`
		AccountID  string    `json:"account_id"`
		LinkAction string    `json:"link_action"`
		Scopes     []string  `json:"scopes"`
		Expiry     time.Time `json:"expiry"`
	}
	cs := []credOut{}
	for _, cr := range creds {
		cs = append(cs, credOut{cr.Ref(), cr.AccountID, cr.LinkAction, cr.Scopes, cr.Expiry})
	}
	if resources == nil {
		resources = []demo.Resource{}
	}
	serving := c.serving(ctx)
	data := map[string]any{"project": c.state.Project, "user": c.state.User, "issuer": c.state.Issuer, "serving": serving,
		"providers": c.state.Providers, "resources": resources, "credentials": cs}
	c.out.result(data, func(w io.Writer) {
		fmt.Fprintf(w, "Project %s of %s (orchestrator %s)\n", c.state.Project, c.state.User.Email, c.state.Issuer)
		if !serving {
			fmt.Fprintln(w, "The orchestrator's endpoints are not reachable: providers cannot verify or get paid until \"orchestrator serve\" runs.")
		}
		fmt.Fprintln(w)
		t := [][]string{{"RESOURCE", "SERVICE", "ID", "STATUS"}}
		pending := 0
		for _, r := range resources {
			t = append(t, []string{r.Name, r.Service, r.ID, r.Status})
			if r.Status == demo.StatusPending {
				pending++
			}
		}
		table(w, t)
		if pending > 0 {
			fmt.Fprintf(w, "%d pending: an add that did not finish. Rerun the same add to finish it, or run \"orchestrator gc\" to clean it up.\n", pending)
		}
		fmt.Fprintln(w)
		t = [][]string{{"CREDENTIAL", "ACCOUNT", "LINK", "EXPIRES"}}
		for _, cr := range cs {
			t = append(t, []string{cr.Service, cr.AccountID, cr.LinkAction, cr.Expiry.Format(time.DateOnly)})
		}
		table(w, t)
	})
	return nil
}

// serving reports whether "orchestrator serve" answers at the issuer URL.
func (c *cli) serving(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.state.Issuer+demo.JWKSPath, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (c *cli) env(ctx context.Context) error {
	creds, err := c.orch.Vault.List(ctx, c.state.Project, c.o.provider)
	if err != nil {
		return err
	}
	services := map[string]map[string]string{}
	seen := map[string]int{} // how many credentials define each name
	for _, cr := range creds {
		env, err := c.orch.Vault.Env(ctx, c.state.Project, cr.Ref())
		if err != nil {
			return err
		}
		vars := map[string]string{}
		for k, v := range env {
			if !c.o.reveal {
				v = vault.Secret(v).String()
			}
			vars[k] = v
			seen[k]++
		}
		services[cr.Ref()] = vars
	}
	// Two services of one provider each have a token under the same name:
	// the flat list qualifies such names with the service id, never
	// letting one silently replace the other.
	flat := map[string]string{}
	for ref, vars := range services {
		_, service, _ := strings.Cut(ref, "/")
		for k, v := range vars {
			if seen[k] > 1 {
				k = envPrefix(service) + "_" + k
			}
			flat[k] = v
		}
	}
	names := make([]string, 0, len(flat))
	for k := range flat {
		names = append(names, k)
	}
	slices.Sort(names)
	c.out.result(map[string]any{"vars": flat, "services": services, "redacted": !c.o.reveal}, func(w io.Writer) {
		for _, k := range names {
			fmt.Fprintf(w, "%s=%s\n", k, flat[k])
		}
	})
	return nil
}

// envPrefix turns a service id such as "compute:small" into COMPUTE_SMALL.
func envPrefix(service string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, service)
}

func (c *cli) billingShow(ctx context.Context) error {
	spend, err := c.orch.Spend(ctx, c.state.Project)
	if err != nil {
		return err
	}
	history, err := c.orch.Ledger.CapHistory(ctx, c.state.Project)
	if err != nil {
		return err
	}
	if history == nil {
		history = []budget.CapRecord{}
	}
	project, err := c.projectSpend(ctx)
	if err != nil {
		return err
	}
	c.out.result(map[string]any{"caps": spend, "project": project, "history": history}, func(w io.Writer) {
		// Spent is what was settled (committed, plus usage billed in
		// arrears); held is reserved and not yet settled (an open metered
		// session's whole maximum, a purchase in flight). Both count
		// against the cap.
		t := [][]string{{"PROVIDER", "MONTHLY CAP", "SPENT", "HELD", "REMAINING"}}
		for _, s := range spend {
			t = append(t, []string{s.Provider, moneyOrNone(s.Limit), demo.Money(s.Committed+s.Arrears, s.Currency), demo.Money(s.Held, s.Currency), moneyOrNone(s.Remaining)})
		}
		p := project
		t = append(t, []string{"(whole project)", moneyOrNone(p.Limit), demo.Money(p.Committed+p.Arrears, p.Currency), demo.Money(p.Held, p.Currency), moneyOrNone(p.Remaining)})
		table(w, t)
	})
	return nil
}

// projectSpend is the project-wide counter of this month: every
// provider's spend together, against the project's cap (if one is set).
func (c *cli) projectSpend(ctx context.Context) (demo.Spend, error) {
	out := demo.Spend{Provider: "", Currency: c.orch.Ledger.Currency()}
	if len(c.state.Providers) == 0 {
		return out, nil
	}
	u, err := c.orch.Ledger.Usage(ctx, budget.Scope{Project: c.state.Project, Provider: c.state.Providers[0].ID})
	if err != nil {
		return out, err
	}
	for _, k := range u.Counters {
		if k.Counter.Provider == "" && k.Counter.Window.Period() == budget.Month {
			out.Window, out.Limit, out.Committed, out.Held, out.Arrears = string(k.Counter.Window), k.Limit, k.Committed, k.Held, k.Arrears
			if k.Limit != nil {
				out.Remaining = &budget.Money{Amount: max(0, k.Limit.Amount-k.Committed-k.Held-k.Arrears), Currency: k.Limit.Currency}
			}
		}
	}
	return out, nil
}

func moneyOrNone(m *budget.Money) string {
	if m == nil {
		return "none"
	}
	return demo.Money(m.Amount, m.Currency)
}

// parseUSD reads "50", "50.5" or "50.25" as cents, without floats.
func parseUSD(s string) (int64, error) {
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "$"), ".")
	if whole == "" || len(frac) > 2 {
		return 0, fmt.Errorf("%q is not an amount in USD", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w < 0 || w > 1_000_000_000 {
		return 0, fmt.Errorf("%q is not an amount in USD", s)
	}
	var f int64
	if frac != "" {
		for len(frac) < 2 {
			frac += "0"
		}
		if f, err = strconv.ParseInt(frac, 10, 64); err != nil || f < 0 {
			return 0, fmt.Errorf("%q is not an amount in USD", s)
		}
	}
	return w*100 + f, nil
}

func (c *cli) billingUpdate(ctx context.Context) error {
	if c.o.limit == "" {
		return fail(exitUsage, "usage", "billing update needs --limit USD")
	}
	cents, err := parseUSD(c.o.limit)
	if err != nil {
		return fail(exitUsage, "usage", "--limit: %v", err)
	}
	scope := "the whole project"
	if c.o.provider != "" {
		if !slices.ContainsFunc(c.state.Providers, func(p providerEntry) bool { return p.ID == c.o.provider }) {
			return fmt.Errorf("%w: provider %q", demo.ErrNotFound, c.o.provider)
		}
		scope = c.o.provider
	}
	// A cap below what this month already spent could never be met: the
	// spending cannot be undone, so refuse it and say what was spent.
	spent := int64(-1)
	if c.o.provider != "" {
		all, err := c.orch.Spend(ctx, c.state.Project)
		if err != nil {
			return err
		}
		for _, sp := range all {
			if sp.Provider == c.o.provider {
				spent = sp.Committed + sp.Arrears
			}
		}
	} else {
		p, err := c.projectSpend(ctx)
		if err != nil {
			return err
		}
		spent = p.Committed + p.Arrears
	}
	if spent > cents {
		return &cliError{Code: "cap_below_spent", Exit: exitUsage,
			Msg: fmt.Sprintf("%s already spent %s this month, more than the %s asked for; set a cap of at least that",
				scope, demo.Money(spent, "USD"), demo.Money(cents, "USD"))}
	}
	// Caps belong to the user: an agent may not raise them.
	if err := c.confirm(c.o.human, "human_required",
		fmt.Sprintf("Set the monthly cap of %s to %s", scope, demo.Money(cents, "USD")), "--human"); err != nil {
		return err
	}
	rec, err := c.orch.Ledger.SetCap(ctx, budget.CapChange{Project: c.state.Project, Provider: c.o.provider,
		Limit: budget.USD(cents), By: budget.Principal{Kind: budget.PrincipalUser, ID: c.state.User.ID}, Reason: "orchestrator billing update"})
	if err != nil {
		return err
	}
	c.out.result(rec, func(w io.Writer) {
		fmt.Fprintf(w, "Monthly cap of %s set to %s\n", scope, demo.Money(rec.Limit.Amount, rec.Limit.Currency))
	})
	return nil
}

func (c *cli) spend(ctx context.Context) error {
	spend, err := c.orch.Spend(ctx, c.state.Project)
	if err != nil {
		return err
	}
	var total int64
	for _, s := range spend {
		total += s.Committed + s.Arrears
	}
	c.out.result(map[string]any{"providers": spend, "total": budget.USD(total)}, func(w io.Writer) {
		t := [][]string{{"PROVIDER", "MONTH", "CHARGED", "HELD", "CAP"}}
		for _, s := range spend {
			t = append(t, []string{s.Provider, s.Window, demo.Money(s.Committed+s.Arrears, s.Currency), demo.Money(s.Held, s.Currency), moneyOrNone(s.Limit)})
		}
		table(w, t)
		fmt.Fprintf(w, "\nTotal this month: %s\n", demo.Money(total, "USD"))
	})
	return nil
}

// resourceRef resolves a resource name (or a service ref) to a service ref.
func (c *cli) resourceRef(ctx context.Context, name string) (string, error) {
	if res, err := c.orch.Resources.Get(ctx, c.state.Project, name); err == nil {
		return res.Service, nil
	}
	if _, err := catalogschema.ParseRef(name); err == nil {
		return name, nil
	}
	return "", fmt.Errorf("%w: resource %q", demo.ErrNotFound, name)
}

func (c *cli) rotate(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fail(exitUsage, "usage", "rotate needs a resource name")
	}
	ref, err := c.resourceRef(ctx, args[0])
	if err != nil {
		return err
	}
	if _, err := c.refresh(ctx); err != nil {
		return err
	}
	c.out.progress("requesting a new token for %s", ref)
	conn, err := c.orch.Rotate(ctx, c.state.Project, ref)
	if err != nil {
		return err
	}
	c.out.result(map[string]any{"connection": conn}, func(w io.Writer) {
		fmt.Fprintf(w, "Rotated the credential of %s; the old token is revoked\n", ref)
	})
	return nil
}

func (c *cli) remove(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return fail(exitUsage, "usage", "remove needs a resource name")
	}
	if _, err := c.refresh(ctx); err != nil {
		return err
	}
	if cur, err := c.orch.Resources.Get(ctx, c.state.Project, args[0]); err == nil && cur.Status == demo.StatusPending {
		return c.discard(ctx, []string{args[0]})
	}
	c.out.progress("removing %s at its provider", args[0])
	res, err := c.orch.Remove(ctx, c.state.Project, args[0])
	if err != nil {
		return err
	}
	c.out.result(map[string]any{"resource": res}, func(w io.Writer) {
		fmt.Fprintf(w, "Removed %s (%s)\n", res.Name, res.Service)
	})
	return nil
}

// gc cleans up every unfinished add of the project (pending resources
// whose add is no longer running); those still in flight are listed and
// left alone.
func (c *cli) gc(ctx context.Context) error {
	all, err := c.orch.Resources.List(ctx, c.state.Project)
	if err != nil {
		return err
	}
	var names []string
	for _, r := range all {
		if r.Status == demo.StatusPending {
			names = append(names, r.Name)
		}
	}
	return c.discard(ctx, names)
}

// discardOut is one cleaned-up add in --json output.
type discardOut struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	// AtProvider is what the interrupted add had made at the provider,
	// removed now; absent when it had made nothing.
	AtProvider *demo.Resource `json:"at_provider,omitempty"`
}

// inFlightOut is an add still running, left alone.
type inFlightOut struct {
	Name              string `json:"name"`
	Service           string `json:"service"`
	RetryAfterSeconds int64  `json:"retry_after_seconds"`
}

// discard cleans up the named pending resources. An add still holding its
// name is skipped and listed; any other failure stops and is reported
// after what was cleaned up before it.
func (c *cli) discard(ctx context.Context, names []string) error {
	if len(names) > 0 {
		if _, err := c.refresh(ctx); err != nil {
			return err
		}
	}
	done, busy := []discardOut{}, []inFlightOut{}
	var failed error
	for _, name := range names {
		c.out.progress("cleaning up the unfinished add of %q", name)
		d, err := c.orch.Discard(ctx, c.state.Project, name)
		var nc *demo.NameConflictError
		switch {
		case errors.As(err, &nc) && nc.InFlight:
			busy = append(busy, inFlightOut{Name: name, Service: nc.Service, RetryAfterSeconds: int64(nc.RetryAfter.Seconds() + 0.999)})
			continue
		case d != nil:
			done = append(done, discardOut{Name: d.Name, Service: d.Service, AtProvider: d.AtProvider})
		}
		if err != nil {
			failed = err
			break
		}
	}
	if failed != nil {
		if len(done) > 0 {
			c.out.progress("cleaned up %d unfinished adds before the failure", len(done))
		}
		return failed
	}
	c.out.result(map[string]any{"discarded": done, "in_flight": busy}, func(w io.Writer) {
		if len(done) == 0 && len(busy) == 0 {
			fmt.Fprintln(w, "No unfinished adds to clean up.")
		}
		for _, d := range done {
			switch r := d.AtProvider; {
			case r == nil:
				fmt.Fprintf(w, "Cleaned up the unfinished add of %q (%s): the provider had made nothing.\n", d.Name, d.Service)
			case r.Charged != nil:
				fmt.Fprintf(w, "Cleaned up the unfinished add of %q (%s): removed %s at the provider, which keeps the %s it was paid.\n",
					d.Name, d.Service, r.ID, demo.Money(r.Charged.Amount, r.Charged.Currency))
			default:
				fmt.Fprintf(w, "Cleaned up the unfinished add of %q (%s): removed %s at the provider.\n", d.Name, d.Service, r.ID)
			}
		}
		for _, b := range busy {
			fmt.Fprintf(w, "Left %q alone: its add is still running (retry in %ds).\n", b.Name, b.RetryAfterSeconds)
		}
	})
	return nil
}

func (c *cli) revoke(ctx context.Context) error {
	if _, err := c.refresh(ctx); err != nil {
		return err
	}
	c.out.progress("sending revocation events")
	rep, err := c.orch.RevokeAll(ctx, c.state.Project, c.o.provider)
	if err != nil {
		return err
	}
	type result struct {
		Service   string `json:"service"`
		AccountID string `json:"account_id"`
		Revoked   bool   `json:"revoked"`
		Attempts  int    `json:"attempts"`
		Error     string `json:"error,omitempty"`
	}
	out := []result{}
	for _, r := range rep.Results {
		x := result{Service: r.Provider + "/" + r.Service, AccountID: r.AccountID, Revoked: r.Revoked, Attempts: r.Attempts}
		if r.Err != nil {
			x.Error = r.Err.Error()
		}
		out = append(out, x)
	}
	if n := len(rep.Failed()); n > 0 {
		return &cliError{Code: "revocation_incomplete", Exit: exitProvider,
			Msg: fmt.Sprintf("%d of %d credentials were not revoked and stay in the vault", n, len(out))}
	}
	c.out.result(map[string]any{"results": out}, func(w io.Writer) {
		for _, r := range out {
			fmt.Fprintf(w, "Revoked %s (account %s)\n", r.Service, r.AccountID)
		}
		if len(out) == 0 {
			fmt.Fprintln(w, "Nothing to revoke")
		}
	})
	return nil
}

func (c *cli) serve(ctx context.Context) error {
	addr := c.o.addr
	if addr == "" {
		u, err := safehttp.CheckURL(c.state.Issuer)
		if err != nil {
			return err
		}
		addr = u.Host
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	c.orch.Mount(mux)
	if signIn, err := c.orch.MountSpendPage(mux, c.state.Project); err == nil { // the spend page (examples/internal/demo/spendpage.go)
		fmt.Fprintf(c.out.stderr, "spend page: open %s%s (this link signs you in once)\n", strings.TrimSuffix(c.state.Issuer, "/"), signIn)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	settler, err := issuer.NewSettler(c.orch.Issuer, nil)
	if err != nil {
		ln.Close()
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go settler.Run(sctx) // the outbox: retries unconfirmed charges
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	c.out.progress("serving %s%s and %s%s on %s", c.state.Issuer, demo.JWKSPath, c.state.Issuer, demo.RedemptionPath, ln.Addr())
	fmt.Fprintf(c.out.stderr, "orchestrator listening on http://%s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

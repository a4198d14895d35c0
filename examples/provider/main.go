// Command provider is a standalone provider server: an ordinary Go HTTP
// service that mounts the agentprov provider handlers (discovery, account
// provisioning and linking, revocation, a bearer-guarded API and paid
// endpoints behind HTTP 402) on its own mux, with its state in SQLite.
//
//	go run ./examples/provider -orchestrator http://127.0.0.1:7780 \
//	    -redemption-key "$KEY" -addr 127.0.0.1:8081 -data ./cloud-data
//
// It trusts one orchestrator: it verifies attestations and payment tokens
// with the keys at <orchestrator>/.well-known/jwks.json and redeems tokens
// at <orchestrator>/payment/redemptions with the redemption key that
// orchestrator registered for it (flag or AGENTPROV_REDEMPTION_KEY).
// It prints its base URL on stdout and stops gracefully on SIGINT/SIGTERM.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	_ "modernc.org/sqlite" // the driver lives in the program, never in the library
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/examples/internal/demo"
	"github.com/agentprov/agentprov/internal/sqldb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "provider:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("provider", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address (port 0 picks a free port)")
	data := fs.String("data", "provider-data", "directory for the SQLite state and the catalog signing key")
	profile := fs.String("profile", "cloud", "what this provider sells: "+strings.Join(demo.ProfileIDs(), " or "))
	orch := fs.String("orchestrator", "", "issuer URL of the trusted orchestrator (required)")
	key := fs.String("redemption-key", os.Getenv("AGENTPROV_REDEMPTION_KEY"), "API key for redeeming payment tokens (default $AGENTPROV_REDEMPTION_KEY)")
	public := fs.String("base-url", "", "public base URL (default http://<addr>)")
	seed := fs.String("seed-account", "", "create an account for this email at start, as if the user had signed up before")
	demoLogin := fs.Bool("demo-login", false, "serve /login, a sign-in for the /device approval page that asks only for an account's email (demo only: no real login)")
	interval := fs.Duration("device-interval", 5*time.Second, "device-flow polling interval")
	verbose := fs.Bool("v", false, "log protocol events to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, ok := demo.Profiles()[*profile]
	if !ok {
		return fmt.Errorf("unknown profile %q", *profile)
	}
	if *orch == "" || *key == "" {
		return errors.New("-orchestrator and -redemption-key are required")
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	db, err := sqldb.OpenSQLite(filepath.Join(*data, "provider.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	catKey, err := loadKey(filepath.Join(*data, "catalog.key"))
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	base := *public
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	cfg := demo.ProviderConfig{
		Profile: p, BaseURL: base, OrchestratorIssuer: *orch, RedemptionKey: *key,
		CatalogKey: catKey, CatalogKeyID: p.ID + "-catalog-1", Logger: log, DeviceInterval: *interval,
	}
	if err := demo.ProviderSQL(ctx, db, &cfg); err != nil {
		ln.Close()
		return err
	}
	prov, err := demo.NewProvider(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	if *seed != "" {
		if _, err := prov.SeedAccount(ctx, *seed); err != nil && !errors.Is(err, provision.ErrEmailTaken) {
			ln.Close()
			return fmt.Errorf("seed account: %w", err)
		}
	}

	// The provider's existing service: its own routes on its own mux,
	// with the protocol mounted next to them.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	prov.Mount(mux)
	if *demoLogin {
		mux.Handle(demo.DemoSignInPath, prov.DemoSignInHandler())
	}

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "provider %s listening on %s\n", p.ID, base)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "provider: stopped")
	return nil
}

// loadKey reads the catalog signing key, creating it (mode 0600) on first start.
func loadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != ed25519.SeedSize {
			return nil, fmt.Errorf("%s: not an Ed25519 seed", path)
		}
		return ed25519.NewKeyFromSeed(b), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/internal/clock"
	"github.com/agentprov/agentprov/internal/oauthwire"
)

// Secret is a credential value — an access token, a refresh token, an API
// key. It prints, formats, marshals to JSON and logs as "[REDACTED]" (an
// empty Secret as ""), so a Credential can be logged or dumped with %+v
// without leaking. Reveal returns the value.
type Secret string

const redacted = "[REDACTED]"

func (s Secret) redact() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Reveal returns the secret value. Call it only where the value must leave
// the vault (an Authorization header, a child process environment).
func (s Secret) Reveal() string { return string(s) }

// String returns "[REDACTED]".
func (s Secret) String() string { return s.redact() }

// GoString returns "[REDACTED]", for %#v.
func (s Secret) GoString() string { return `"` + s.redact() + `"` }

// Format writes "[REDACTED]" for every verb (%v, %+v, %#v, %s, %q, %x…).
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		_, _ = io.WriteString(f, `"`+s.redact()+`"`)
		return
	}
	_, _ = io.WriteString(f, s.redact())
}

// MarshalJSON writes "[REDACTED]": a Secret never reaches JSON by accident.
// The vault's stores use their own encoding.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.redact()) }

// LogValue keeps secrets out of log/slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.redact()) }

// Credential is what a provider returned for one service of one project:
// tokens, environment values and the account it belongs to. Provider and
// Service together form the service ref.
type Credential struct {
	Project      string
	Provider     string
	Service      string
	AccessToken  Secret
	RefreshToken Secret
	TokenType    string
	Expiry       time.Time
	Scopes       []string
	// Env holds further values the provider returned, by environment
	// variable name (e.g. "DATABASE_URL").
	Env map[string]Secret
	// AccountID is the provider-side account; LinkAction is "created" or
	// "linked_existing".
	AccountID  string
	LinkAction string
}

// Ref returns the credential's service ref, "provider/service".
func (c *Credential) Ref() string { return c.Provider + "/" + c.Service }

// Key returns the credential's vault key.
func (c *Credential) Key() VaultKey {
	return VaultKey{Project: c.Project, Provider: c.Provider, Service: c.Service}
}

func (c *Credential) clone() *Credential {
	d := *c
	d.Scopes = slices.Clone(c.Scopes)
	if c.Env != nil {
		d.Env = make(map[string]Secret, len(c.Env))
		for k, v := range c.Env {
			d.Env[k] = v
		}
	}
	return &d
}

// VaultKey addresses one credential: a project and a service ref.
type VaultKey struct {
	Project  string
	Provider string
	Service  string
}

// String returns "project:provider/service".
func (k VaultKey) String() string { return k.Project + ":" + k.Provider + "/" + k.Service }

// Valid reports whether the key's parts are a project id, a provider id
// and a service id (PROTOCOL §2.5).
func (k VaultKey) Valid() bool {
	return oauthwire.ValidProjectID(k.Project) && oauthwire.ValidProviderID(k.Provider) && oauthwire.ValidServiceID(k.Service)
}

// VaultRecord is one stored credential: opaque bytes (plaintext or, under
// EncryptedVaultStore, ciphertext) and a version that every write bumps.
type VaultRecord struct {
	Key     VaultKey
	Data    []byte
	Version int64
}

// VaultStore persists vault records. Each method is one atomic step; the
// Vault builds everything else (updates, rotation, token refresh) on
// CompareAndSwap, never on read-then-write. Versions start at 1 and grow by
// one on every write of a key. Implementations must be safe for concurrent
// use, must not retain or modify the data slices they are given or return,
// and pass authztest.RunVaultStore.
type VaultStore interface {
	// Get returns the record, or ErrCredentialNotFound.
	Get(ctx context.Context, key VaultKey) (VaultRecord, error)
	// Put writes data unconditionally and returns the new version.
	Put(ctx context.Context, key VaultKey, data []byte) (int64, error)
	// CompareAndSwap writes data only if the record's version is version,
	// or, when version is 0, only if there is no record. It returns the
	// new version, ErrVersionConflict when the condition fails, or
	// ErrCredentialNotFound when version > 0 and there is no record.
	CompareAndSwap(ctx context.Context, key VaultKey, version int64, data []byte) (int64, error)
	// Delete removes the record, or fails with ErrCredentialNotFound.
	Delete(ctx context.Context, key VaultKey) error
	// List returns the project's records, only provider's when provider is
	// not empty, ordered by provider then service.
	List(ctx context.Context, project, provider string) ([]VaultRecord, error)
}

// VaultOptions tune a Vault. The zero value is safe.
type VaultOptions struct {
	// Refresh, if set, renews an expired (or nearly expired) credential,
	// typically with an OAuth refresh-token grant. The result is stored
	// with compare-and-set, so concurrent refreshes store one winner.
	Refresh func(ctx context.Context, c Credential) (Credential, error)
	// RefreshEarly renews tokens this long before they expire; default 1 minute.
	RefreshEarly time.Duration
	// Clock reads the time; default time.Now.
	Clock func() time.Time
	// Logger receives refresh events (never secrets); default slog.Default().
	Logger *slog.Logger
}

// Vault is the orchestrator's credential vault: credentials providers
// returned, kept per project and service, never handed to the agent except
// as the environment of a process it runs or a token source. It is a
// portable type over a VaultStore: memory, SQL, and an encrypting wrapper
// for either.
//
// A Vault is safe for concurrent use.
type Vault struct {
	store VaultStore
	opts  VaultOptions
	now   clock.Func
	log   *slog.Logger
	// refreshing holds one mutex per credential being refreshed, so that
	// callers in this process refresh once rather than racing the
	// provider with the same refresh token (which rotation-with-reuse-
	// detection providers would treat as theft). Across processes,
	// compare-and-set still picks one winner.
	refreshing sync.Map // VaultKey -> *sync.Mutex
}

// NewVault returns a Vault over store.
func NewVault(store VaultStore, opts *VaultOptions) (*Vault, error) {
	if store == nil {
		return nil, errors.New("authz: vault: store is required")
	}
	v := &Vault{store: store}
	if opts != nil {
		v.opts = *opts
	}
	if v.opts.RefreshEarly == 0 {
		v.opts.RefreshEarly = time.Minute
	}
	if v.opts.RefreshEarly < 0 {
		return nil, errors.New("authz: vault: RefreshEarly must not be negative")
	}
	v.now = clock.Func(v.opts.Clock)
	v.log = v.opts.Logger
	if v.log == nil {
		v.log = slog.Default()
	}
	return v, nil
}

// credentialRecord is the stored encoding of a Credential. Unlike Credential
// it holds secrets as plain strings; it never leaves the package except as
// bytes handed to a VaultStore.
type credentialRecord struct {
	V            int               `json:"v"`
	AccessToken  string            `json:"access_token,omitempty"`
	RefreshToken string            `json:"refresh_token,omitempty"`
	TokenType    string            `json:"token_type,omitempty"`
	Expiry       *time.Time        `json:"expiry,omitempty"`
	Scopes       []string          `json:"scopes,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	AccountID    string            `json:"account_id,omitempty"`
	LinkAction   string            `json:"link_action,omitempty"`
}

func encodeCredential(c *Credential) ([]byte, error) {
	r := credentialRecord{
		V:            1,
		AccessToken:  string(c.AccessToken),
		RefreshToken: string(c.RefreshToken),
		TokenType:    c.TokenType,
		Scopes:       c.Scopes,
		AccountID:    c.AccountID,
		LinkAction:   c.LinkAction,
	}
	if !c.Expiry.IsZero() {
		t := c.Expiry.UTC()
		r.Expiry = &t
	}
	if len(c.Env) > 0 {
		r.Env = make(map[string]string, len(c.Env))
		for k, v := range c.Env {
			r.Env[k] = string(v)
		}
	}
	return json.Marshal(&r)
}

func decodeCredential(rec VaultRecord) (*Credential, error) {
	var r credentialRecord
	if err := json.Unmarshal(rec.Data, &r); err != nil || r.V != 1 {
		return nil, errorf(ErrVaultTampered, nil, "record %s does not decode", rec.Key)
	}
	c := &Credential{
		Project:      rec.Key.Project,
		Provider:     rec.Key.Provider,
		Service:      rec.Key.Service,
		AccessToken:  Secret(r.AccessToken),
		RefreshToken: Secret(r.RefreshToken),
		TokenType:    r.TokenType,
		Scopes:       r.Scopes,
		AccountID:    r.AccountID,
		LinkAction:   r.LinkAction,
	}
	if r.Expiry != nil {
		c.Expiry = *r.Expiry
	}
	if len(r.Env) > 0 {
		c.Env = make(map[string]Secret, len(r.Env))
		for k, v := range r.Env {
			c.Env[k] = Secret(v)
		}
	}
	return c, nil
}

// checkCredential validates c before any write, so a bad credential never
// reaches the store.
func checkCredential(c *Credential) error {
	if !oauthwire.ValidProjectID(c.Project) {
		return errorf(authz.ErrInvalidRequest, nil, "project %q is not a valid project id", c.Project)
	}
	if !oauthwire.ValidProviderID(c.Provider) || !oauthwire.ValidServiceID(c.Service) {
		return errorf(authz.ErrInvalidRequest, nil, "%q is not a valid service ref", c.Provider+"/"+c.Service)
	}
	for name := range c.Env {
		if !validEnvName(name) {
			return errorf(authz.ErrInvalidRequest, nil, "env name %q must match [A-Z_][A-Z0-9_]*", name)
		}
	}
	switch c.LinkAction {
	case "", "created", "linked_existing":
	default:
		return errorf(authz.ErrInvalidRequest, nil, "link action %q must be created or linked_existing", c.LinkAction)
	}
	return nil
}

func validEnvName(s string) bool {
	if s == "" || len(s) > 128 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// parseKey splits ref and validates the vault key it forms with project.
func parseKey(project, ref string) (VaultKey, error) {
	p, s, ok := strings.Cut(ref, "/")
	k := VaultKey{Project: project, Provider: p, Service: s}
	if !ok || !oauthwire.ValidServiceRef(ref) {
		return k, errorf(authz.ErrInvalidRequest, nil, "%q is not a valid service ref", ref)
	}
	if !oauthwire.ValidProjectID(project) {
		return k, errorf(authz.ErrInvalidRequest, nil, "project %q is not a valid project id", project)
	}
	return k, nil
}

// Put stores c, replacing any credential with the same key.
func (v *Vault) Put(ctx context.Context, c Credential) error {
	if err := checkCredential(&c); err != nil {
		return err
	}
	data, err := encodeCredential(&c)
	if err != nil {
		return err
	}
	_, err = v.store.Put(ctx, c.Key(), data)
	return err
}

// Create stores c only if no credential has its key; otherwise it fails
// with ErrVersionConflict.
func (v *Vault) Create(ctx context.Context, c Credential) error {
	if err := checkCredential(&c); err != nil {
		return err
	}
	data, err := encodeCredential(&c)
	if err != nil {
		return err
	}
	_, err = v.store.CompareAndSwap(ctx, c.Key(), 0, data)
	return err
}

// Get returns the credential of project for service ref.
func (v *Vault) Get(ctx context.Context, project, ref string) (*Credential, error) {
	c, _, err := v.get(ctx, project, ref)
	return c, err
}

func (v *Vault) get(ctx context.Context, project, ref string) (*Credential, int64, error) {
	key, err := parseKey(project, ref)
	if err != nil {
		return nil, 0, err
	}
	rec, err := v.store.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	rec.Key = key
	c, err := decodeCredential(rec)
	if err != nil {
		return nil, 0, err
	}
	return c, rec.Version, nil
}

// List returns the project's credentials, only provider's when provider is
// not empty, ordered by service ref.
func (v *Vault) List(ctx context.Context, project, provider string) ([]Credential, error) {
	if !oauthwire.ValidProjectID(project) {
		return nil, errorf(authz.ErrInvalidRequest, nil, "project %q is not a valid project id", project)
	}
	if provider != "" && !oauthwire.ValidProviderID(provider) {
		return nil, errorf(authz.ErrInvalidRequest, nil, "provider %q is not a valid provider id", provider)
	}
	recs, err := v.store.List(ctx, project, provider)
	if err != nil {
		return nil, err
	}
	out := make([]Credential, 0, len(recs))
	for _, rec := range recs {
		c, err := decodeCredential(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, nil
}

// Delete removes the credential of project for service ref.
func (v *Vault) Delete(ctx context.Context, project, ref string) error {
	key, err := parseKey(project, ref)
	if err != nil {
		return err
	}
	return v.store.Delete(ctx, key)
}

// maxUpdateAttempts bounds the compare-and-set retries of Update.
const maxUpdateAttempts = 16

// Update applies fn to the stored credential and writes the result with
// compare-and-set, re-reading and re-applying fn when another writer got
// there first, so no update is lost. fn must not change the key fields.
func (v *Vault) Update(ctx context.Context, project, ref string, fn func(*Credential) error) (*Credential, error) {
	for range maxUpdateAttempts {
		c, ver, err := v.get(ctx, project, ref)
		if err != nil {
			return nil, err
		}
		key := c.Key()
		if err := fn(c); err != nil {
			return nil, err
		}
		if c.Key() != key {
			return nil, errorf(authz.ErrInvalidRequest, nil, "update may not change the project or service ref")
		}
		if err := checkCredential(c); err != nil {
			return nil, err
		}
		data, err := encodeCredential(c)
		if err != nil {
			return nil, err
		}
		_, err = v.store.CompareAndSwap(ctx, key, ver, data)
		if errors.Is(err, ErrVersionConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, errorf(ErrVersionConflict, nil, "credential kept changing; gave up after %d attempts", maxUpdateAttempts)
}

// Token returns the OAuth token of project's credential for service ref,
// refreshing it first (see VaultOptions.Refresh) when it expires within
// RefreshEarly. Without a refresher an expired token fails with
// ErrCredentialExpired.
func (v *Vault) Token(ctx context.Context, project, ref string) (*oauth2.Token, error) {
	for range maxUpdateAttempts {
		c, ver, err := v.get(ctx, project, ref)
		if err != nil {
			return nil, err
		}
		now := v.now.Now()
		if c.Expiry.IsZero() || now.Add(v.opts.RefreshEarly).Before(c.Expiry) {
			return toOAuth2(c), nil
		}
		if v.opts.Refresh == nil {
			if now.Before(c.Expiry) {
				return toOAuth2(c), nil
			}
			return nil, errorf(ErrCredentialExpired, nil, "token for %s expired at %s", ref, c.Expiry.UTC().Format(time.RFC3339))
		}
		tok, retry, err := v.refresh(ctx, c, ver)
		if retry {
			continue
		}
		return tok, err
	}
	return nil, errorf(ErrVersionConflict, nil, "credential kept changing during refresh")
}

// refresh renews c (read at version ver) under the per-credential lock. It
// reports retry when the stored credential changed meanwhile, so that the
// caller re-reads it (another caller's fresh token is then used as is).
func (v *Vault) refresh(ctx context.Context, c *Credential, ver int64) (*oauth2.Token, bool, error) {
	ref, project := c.Ref(), c.Project
	muAny, _ := v.refreshing.LoadOrStore(c.Key(), new(sync.Mutex))
	mu := muAny.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	if rec, err := v.store.Get(ctx, c.Key()); err != nil {
		return nil, false, err
	} else if rec.Version != ver {
		return nil, true, nil
	}
	now := v.now.Now()
	nc, err := v.opts.Refresh(ctx, *c.clone())
	if err != nil {
		if now.Before(c.Expiry) {
			// Still valid: serve it and try again next time.
			v.log.WarnContext(ctx, "authz: vault: refresh failed; using current token", "ref", ref, "project", project, "err", err)
			return toOAuth2(c), false, nil
		}
		return nil, false, errorf(ErrCredentialExpired, err, "refreshing %s failed", ref)
	}
	nc.Project, nc.Provider, nc.Service = c.Project, c.Provider, c.Service
	if err := checkCredential(&nc); err != nil {
		return nil, false, err
	}
	data, err := encodeCredential(&nc)
	if err != nil {
		return nil, false, err
	}
	_, err = v.store.CompareAndSwap(ctx, c.Key(), ver, data)
	if errors.Is(err, ErrVersionConflict) {
		// Another process refreshed (or rotated) concurrently: use theirs.
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	v.log.InfoContext(ctx, "authz: vault: token refreshed", "ref", ref, "project", project)
	return toOAuth2(&nc), false, nil
}

func toOAuth2(c *Credential) *oauth2.Token {
	typ := c.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	return &oauth2.Token{
		AccessToken:  string(c.AccessToken),
		RefreshToken: string(c.RefreshToken),
		TokenType:    typ,
		Expiry:       c.Expiry,
	}
}

// TokenSource returns an oauth2.TokenSource for one service's credential.
// oauth2.TokenSource has no context parameter, so each Token call reads the
// vault with context.Background(); use Token directly to pass a context.
func (v *Vault) TokenSource(project, ref string) oauth2.TokenSource {
	return vaultTokenSource{v: v, project: project, ref: ref}
}

type vaultTokenSource struct {
	v            *Vault
	project, ref string
}

func (s vaultTokenSource) Token() (*oauth2.Token, error) {
	return s.v.Token(context.Background(), s.project, s.ref)
}

// EnvName returns the conventional variable for a provider's access token:
// the provider id upper-cased, '-' as '_', followed by "_API_TOKEN".
func EnvName(provider string) string {
	return strings.ToUpper(strings.ReplaceAll(provider, "-", "_")) + "_API_TOKEN"
}

// Env returns the environment for a process that uses one service:
// EnvName(provider) set to the access token (when there is one) and every
// value of the credential's Env, which wins over the conventional name.
// The values are revealed: hand them to the process, never to logs.
func (v *Vault) Env(ctx context.Context, project, ref string) (map[string]string, error) {
	c, err := v.Get(ctx, project, ref)
	if err != nil {
		return nil, err
	}
	env := make(map[string]string, len(c.Env)+1)
	if c.AccessToken != "" {
		env[EnvName(c.Provider)] = c.AccessToken.Reveal()
	}
	for k, s := range c.Env {
		env[k] = s.Reveal()
	}
	return env, nil
}

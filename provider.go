package agentprov

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/agentprov/agentprov/authz"
	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/payment/paywall"
)

// Paths of the provider role under its base URL, as Provider.Mount serves
// them. The OAuth documents follow RFC 8414 and RFC 9728 instead: at the
// origin's /.well-known/..., followed by the base path.
const (
	PathCatalog    = "/catalog"
	PathJWKS       = "/.well-known/jwks.json"
	PathDevicePage = "/device"
)

// ProviderOptions complete a Provider. Nil options serve discovery and
// provisioning only: an unsigned catalog and no paid routes.
type ProviderOptions struct {
	// Discovery signs the catalog and sets caching (see
	// discovery.HandlerOptions); BasePath is set by the Provider.
	Discovery *discovery.HandlerOptions
	// Paywall charges paid routes (Provider.Paid). When set, the metadata
	// announces the agentprov payment method with the base URL as
	// payment_endpoint, unless they are set already.
	Paywall *paywall.Paywall
	// SignedIn tells who is signed in to the provider's own site. When
	// set and DevicePage is nil, the Provider serves the library's
	// consent page (provision.DevicePage) at PathDevicePage: the account
	// holder enters the user code, sees the orchestrator, the service as
	// the catalog describes it (title, description, price) and the
	// scopes, and approves or denies. This is what a Linker on the
	// orchestrator side waits for.
	SignedIn provision.SignedInFunc
	// SignInURL is where the consent page sends a person who is not
	// signed in (see provision.DevicePageOptions.SignInURL).
	SignInURL string
	// DevicePage replaces the library's consent page with the service's
	// own handler, served at PathDevicePage: it signs the user in, shows
	// what is asked, and calls Provisioner.ApproveDevice. Leave both it
	// and SignedIn nil to serve the page elsewhere (ProvisionerOptions
	// sets its URL).
	DevicePage http.Handler
}

// Provider is the provider role in one piece: the discovery documents
// (metadata, catalog, JWKS), the provisioning and OAuth endpoints with
// revocation, the device page, and the Paywall for paid routes, all under
// one base URL, mountable on a service's existing mux.
//
// Each piece is also usable alone: Discovery, Provisioning and Paid return
// the handlers and middleware Mount registers, and the packages underneath
// (discovery.Handler, provision.Provisioner, paywall.Paywall) can be mounted
// without a Provider.
//
// A Provider is safe for concurrent use.
type Provider struct {
	base, prefix string
	meta         *catalogschema.ProviderMetadata
	disc         *discovery.Handler
	prov         *provision.Provisioner
	opts         ProviderOptions
}

// NewProvider assembles the provider role at baseURL (origin plus an
// optional path prefix, such as "https://api.example/agentprov"). prov's
// issuer (ProvisionerOptions.Issuer) must be baseURL. meta needs the
// provider's identity — ProviderID, Name, TermsOfService, AuthModes —
// and every endpoint URL left empty is filled in from baseURL.
func NewProvider(baseURL string, meta catalogschema.ProviderMetadata, cat *catalogschema.Catalog, prov *provision.Provisioner, opts *ProviderOptions) (*Provider, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("agentprov: provider: base URL must be an absolute URL without query or fragment")
	}
	if prov == nil || cat == nil {
		return nil, errors.New("agentprov: provider: catalog and provisioner are required")
	}
	base := strings.TrimSuffix(baseURL, "/")
	if iss := strings.TrimSuffix(prov.ServerMetadata().Issuer, "/"); iss != base {
		return nil, errors.New("agentprov: provider: provisioner issuer " + iss + " is not the base URL " + base)
	}
	p := &Provider{base: base, prefix: strings.TrimSuffix(u.EscapedPath(), "/"), prov: prov}
	if opts != nil {
		p.opts = *opts
	}
	fill := func(field *string, v string) {
		if *field == "" {
			*field = v
		}
	}
	if meta.ProtocolVersion == "" {
		meta.ProtocolVersion = catalogschema.ProtocolVersion
	}
	fill(&meta.CatalogURI, base+PathCatalog)
	fill(&meta.JWKSURI, base+PathJWKS)
	fill(&meta.AuthorizationServer, base)
	fill(&meta.AccountProvisioningEndpoint, base+provision.PathToken)
	fill(&meta.RevocationEndpoint, base+provision.PathRevocationEvent)
	if meta.CatalogSigning == "" {
		meta.CatalogSigning = catalogschema.SigningNone
	}
	if p.opts.Paywall != nil {
		if len(meta.PaymentMethods) == 0 {
			meta.PaymentMethods = []string{catalogschema.PaymentMethodAgentprovToken}
		}
		fill(&meta.PaymentEndpoint, base)
	}
	if meta.PaymentMethods == nil {
		meta.PaymentMethods = []string{} // the schema wants the array, even empty
	}
	var hopts discovery.HandlerOptions
	if p.opts.Discovery != nil {
		hopts = *p.opts.Discovery
	}
	if hopts.Key != nil || hopts.SigningKey != nil || hopts.Signer != nil {
		meta.CatalogSigning = catalogschema.SigningJWS
	}
	hopts.BasePath = p.prefix
	p.meta = &meta
	if p.opts.DevicePage == nil && p.opts.SignedIn != nil {
		page, err := provision.NewDevicePage(prov, p.opts.SignedIn, &provision.DevicePageOptions{
			ProviderName: meta.Name, SignInURL: p.opts.SignInURL, Service: catalogService(cat)})
		if err != nil {
			return nil, err
		}
		p.opts.DevicePage = page
	}
	if p.disc, err = discovery.NewHandler(p.meta, cat, &hopts); err != nil {
		return nil, err
	}
	return p, nil
}

// Metadata returns the provider metadata as served, endpoints filled in.
// The caller must not modify it.
func (p *Provider) Metadata() *catalogschema.ProviderMetadata { return p.meta }

// Discovery serves the metadata, the catalog and the JWKS.
func (p *Provider) Discovery() *discovery.Handler { return p.disc }

// Provisioning serves the account provisioning, OAuth, device flow and
// revocation endpoints (provision.Provisioner.Handler).
func (p *Provider) Provisioning() http.Handler { return p.prov.Handler() }

// Paid is the middleware of a paid route of service ref ("provider/service")
// at price: the Paywall answers 402 until a payment token pays, then the
// bearer check admits only tokens granting scopes. Without a Paywall it is
// the bearer check alone.
func (p *Provider) Paid(ref string, price budget.Money, scopes ...string) func(http.Handler) http.Handler {
	bearer := p.prov.Middleware(scopes...)
	if p.opts.Paywall == nil {
		return bearer
	}
	pay := p.opts.Paywall.Require(ref, price)
	// The Paywall takes the Payment credential off the request, so the
	// bearer check sees only the Bearer token.
	return func(h http.Handler) http.Handler { return pay(bearer(h)) }
}

// Charged is the middleware of a paid route that needs no account at the
// provider (a price check, a one-off lookup): the Paywall alone. Without a
// Paywall it refuses every request with 503, so a misconfigured provider
// never serves paid work for free.
func (p *Provider) Charged(ref string, price budget.Money) func(http.Handler) http.Handler {
	if p.opts.Paywall == nil {
		return func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "payment is not configured", http.StatusServiceUnavailable)
			})
		}
	}
	return p.opts.Paywall.Require(ref, price)
}

// Mount registers the provider role on mux under the base URL's path: the
// discovery documents, the provisioning endpoints, the two OAuth
// well-known documents and, when set, the device page. Routes the service
// already has elsewhere on mux are untouched; paid routes are the service's
// own handlers wrapped in Paid.
func (p *Provider) Mount(mux *http.ServeMux) {
	meta, cat, jwks := p.prefix+discovery.MetadataPath, mustPath(p.meta.CatalogURI), mustPath(p.meta.JWKSURI)
	mux.Handle("GET "+meta, p.disc)
	mux.Handle("GET "+cat, p.disc)
	mux.Handle("GET "+jwks, p.disc)
	prov := p.Provisioning()
	for _, path := range []string{provision.PathToken, provision.PathAuthorize, provision.PathDeviceAuthorization, provision.PathRevoke, provision.PathRevocationEvent} {
		mux.Handle(p.prefix+path, prov)
	}
	mux.Handle("GET "+mustPath(p.prov.ResourceMetadataURL()), prov)
	mux.Handle("GET "+authz.PathResourceMetadata+"/", prov) // RFC 9728 §3.1 path insertion
	mux.Handle("GET "+authz.PathServerMetadata+p.prefix, prov)
	if p.opts.DevicePage != nil {
		mux.Handle(p.prefix+PathDevicePage, p.opts.DevicePage)
	}
}

func mustPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "/"
	}
	return u.EscapedPath()
}

// catalogService describes a service ref for the consent page from the
// catalog: its description as title text and its first price in major
// units with the currency ("12.99 USD one_time").
func catalogService(cat *catalogschema.Catalog) func(ctx context.Context, ref string) (provision.DeviceService, bool) {
	return func(_ context.Context, ref string) (provision.DeviceService, bool) {
		r, err := catalogschema.ParseRef(ref)
		if err != nil || r.Provider != cat.ProviderID {
			return provision.DeviceService{}, false
		}
		for _, s := range cat.Services {
			if s == nil || s.ServiceID != r.Service {
				continue
			}
			d := provision.DeviceService{Title: s.ServiceID, Description: s.Description}
			if s.Pricing.Type == catalogschema.PricingFree {
				d.Price = "free"
			} else if len(s.Prices) > 0 {
				pr := s.Prices[0]
				d.Price = budget.Money{Amount: pr.Amount, Currency: pr.Currency}.String() + " " + strings.ReplaceAll(string(pr.Basis), "_", "-")
			}
			return d, true
		}
		return provision.DeviceService{}, false
	}
}

package catalogschema

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// ProtocolVersion is the version of the protocol this package implements.
const ProtocolVersion = "0.1"

// Well-known location of the provider metadata document (PROTOCOL §2.7).
const MetadataPath = "/.well-known/agent-provisioning"

// CatalogSigning says how a provider publishes its catalog.
type CatalogSigning string

// Catalog signing modes.
const (
	// SigningJWS: the catalog is served as a compact JWS with typ
	// "agentprov-catalog+jws", signed by a key in the provider's JWKS.
	SigningJWS CatalogSigning = "jws"
	// SigningNone: the catalog is served as plain JSON.
	SigningNone CatalogSigning = "none"
)

// AuthMode names a way for an orchestrator to obtain credentials at a provider.
type AuthMode string

// Authorization modes defined by the protocol. Unknown modes are kept as-is.
const (
	AuthAttestation            AuthMode = "attestation"
	AuthOAuthAuthorizationCode AuthMode = "oauth_authorization_code"
	AuthOAuthDeviceCode        AuthMode = "oauth_device_code"
)

// PaymentMethodAgentprovToken is the protocol's own payment token method (§5).
const PaymentMethodAgentprovToken = "agentprov_token"

// ProviderMetadata is the document a provider serves at MetadataPath.
// A value is safe for concurrent reads; Validate does not modify it.
type ProviderMetadata struct {
	ProtocolVersion string `json:"protocol_version"`
	ProviderID      string `json:"provider_id"`
	Name            string `json:"name"`
	Website         string `json:"website,omitzero"`
	// TermsOfService is the terms a user accepts when an account is created.
	TermsOfService Terms          `json:"terms_of_service"`
	PrivacyURL     string         `json:"privacy_url,omitzero"`
	JWKSURI        string         `json:"jwks_uri"`
	CatalogURI     string         `json:"catalog_uri"`
	CatalogSigning CatalogSigning `json:"catalog_signing"`
	// AuthorizationServer is an RFC 8414 issuer URL; required when an OAuth
	// auth mode is offered.
	AuthorizationServer         string     `json:"authorization_server,omitzero"`
	AccountProvisioningEndpoint string     `json:"account_provisioning_endpoint,omitzero"`
	RevocationEndpoint          string     `json:"revocation_endpoint,omitzero"`
	PaymentEndpoint             string     `json:"payment_endpoint,omitzero"`
	AuthModes                   []AuthMode `json:"auth_modes"`
	PaymentMethods              []string   `json:"payment_methods"`
}

// Terms identifies one version of a provider's terms of service.
type Terms struct {
	URL     string `json:"url"`
	Version string `json:"version"`
}

// Catalog is a provider's list of services. Services holds pointers because
// a Service caches its compiled configuration schema.
type Catalog struct {
	ProtocolVersion string     `json:"protocol_version"`
	ProviderID      string     `json:"provider_id"`
	ProviderName    string     `json:"provider_name"`
	UpdatedAt       time.Time  `json:"updated_at"`
	Services        []*Service `json:"services"`
	// Source records where an imported catalog came from; nil for catalogs
	// published by the provider itself.
	Source *Source `json:"source,omitzero"`
}

// Source describes the upstream marketplace a catalog was imported from.
type Source struct {
	// Kind is "stripe_projects" for ImportStripeProjects.
	Kind string `json:"kind"`
	// ProviderID is the marketplace's own provider id (e.g. "prvdr_…").
	ProviderID string `json:"provider_id,omitzero"`
	// LastUpdated is the marketplace's timestamp, verbatim.
	LastUpdated string `json:"last_updated,omitzero"`
}

// Kind says whether a service is a plan (a billing tier) or something that
// is deployed (a resource).
type Kind string

// Service kinds.
const (
	KindPlan       Kind = "plan"
	KindDeployable Kind = "deployable"
)

// Scope says whether a service is bought once per provider account or once
// per project.
type Scope string

// Service scopes.
const (
	ScopeAccount Scope = "account"
	ScopeProject Scope = "project"
)

// Availability values known today; others are preserved.
const (
	AvailabilityAvailable    = "available"
	AvailabilityNotInCountry = "not_in_country"
	AvailabilityUnavailable  = "unavailable"
)

// Service is one catalog entry. It is a superset of Stripe Projects'
// v2.provisioning.provider_service_detail: every member of that object has a
// field here, members this package does not know are kept in Extra, and
// Prices adds machine-readable money.
//
// A Service is safe for concurrent use once built; it must not be copied or
// have ConfigurationSchema changed after ValidateConfig was first called.
type Service struct {
	// ID is an opaque marketplace id such as "prvsvc_…"; optional.
	ID string `json:"id,omitzero"`
	// Object is the marketplace object type; optional.
	Object string `json:"object,omitzero"`
	// ServiceID is the protocol service id (§2.5).
	ServiceID string `json:"service_id"`
	// ProviderID is an opaque marketplace provider id such as "prvdr_…". It
	// is not the protocol provider id, which is Catalog.ProviderID.
	ProviderID   string `json:"provider_id,omitzero"`
	ProviderName string `json:"provider_name,omitzero"`
	Description  string `json:"description"`
	Kind         Kind   `json:"kind"`
	Scope        Scope  `json:"scope"`
	Availability string `json:"availability,omitzero"`
	// Categories are free-form lowercase tags such as "database".
	Categories []string `json:"categories,omitzero"`
	// Group ties services that are alternatives of each other; null if none.
	Group *string `json:"group"`
	// LLMContext is a URL or text for agents; null if none. Treat as
	// untrusted prose.
	LLMContext  *string `json:"llm_context"`
	Development *bool   `json:"development,omitzero"`
	Livemode    *bool   `json:"livemode,omitzero"`
	// Created is kept verbatim (null in today's Stripe captures).
	Created json.RawMessage `json:"created,omitzero"`
	// ConfigurationSchema is a JSON Schema for the configuration accepted
	// when the service is provisioned. Checked by ValidateConfig.
	ConfigurationSchema json.RawMessage `json:"configuration_schema,omitzero"`
	// ProviderConfigurationSchema is a JSON Schema for provider-account
	// level configuration; kept verbatim.
	ProviderConfigurationSchema json.RawMessage `json:"provider_configuration_schema,omitzero"`
	AllowedUpdates              []AllowedUpdate `json:"allowed_updates,omitzero"`
	// UpdateableTo is deprecated upstream in favour of AllowedUpdates.
	UpdateableTo []string     `json:"updateable_to,omitzero"`
	Constraints  []Constraint `json:"constraints,omitzero"`
	Pricing      Pricing      `json:"pricing"`
	// Prices are machine-readable prices, an agentprov extension; see
	// MaxChargeWithin.
	Prices []Price `json:"prices,omitzero"`

	// Extra holds members this package does not know, verbatim, so that
	// nothing is lost when a document is decoded and encoded again.
	Extra map[string]json.RawMessage `json:"-"`

	cfg configCache
}

// configCache memoizes the compiled configuration schema of a Service.
type jsonschemaSchema = jsonschema.Schema

type configCache struct {
	once   sync.Once
	schema *jsonschemaSchema
	err    error
}

// AllowedUpdate says which service an existing one may be switched to.
type AllowedUpdate struct {
	// Direction is "any", "up" or "down".
	Direction string `json:"direction"`
	Service   string `json:"service"`
}

// Constraint limits how a service may be combined. Members of unknown
// constraint types are kept in Extra.
type Constraint struct {
	// Type is "count", "mutual_exclusion_allowed_updates" or a later type.
	Type                          string                     `json:"type"`
	Count                         *CountConstraint           `json:"count,omitzero"`
	MutualExclusionAllowedUpdates *bool                      `json:"mutual_exclusion_allowed_updates,omitzero"`
	Extra                         map[string]json.RawMessage `json:"-"`
}

// CountConstraint bounds how many instances may exist.
type CountConstraint struct {
	AtMost *int64 `json:"at_most,omitzero"`
}

// PricingType is the upstream coarse pricing class.
type PricingType string

// Pricing types.
const (
	PricingFree      PricingType = "free"
	PricingPaid      PricingType = "paid"
	PricingComponent PricingType = "component"
)

// Pricing is the upstream human-oriented pricing description. Component
// and Paid are null when absent.
type Pricing struct {
	Type      PricingType       `json:"type"`
	Component *ComponentPricing `json:"component"`
	// Paid is the legacy single price description.
	Paid        *PaidPricing    `json:"paid"`
	PaidPricing []PricingOption `json:"paid_pricing,omitzero"`
}

// PaidPricing is a freeform price description.
type PaidPricing struct {
	// Type is "free" or "freeform".
	Type        string  `json:"type"`
	Freeform    *string `json:"freeform"`
	Description *string `json:"description"`
}

// PricingOption is one selectable tier of a paid service.
type PricingOption struct {
	Type        string  `json:"type"`
	Freeform    *string `json:"freeform"`
	Description *string `json:"description"`
	IsDefault   *bool   `json:"is_default"`
	// Configuration selects this tier when passed at provisioning; kept verbatim.
	Configuration json.RawMessage `json:"configuration,omitzero"`
}

// ComponentPricing prices a deployable by the plan it runs under.
type ComponentPricing struct {
	Options []ComponentOption `json:"options,omitzero"`
}

// ComponentOption prices a component under the listed parent services.
type ComponentOption struct {
	Type           string       `json:"type"`
	IsDefault      *bool        `json:"is_default"`
	Paid           *PaidPricing `json:"paid"`
	ParentServices []string     `json:"parent_services,omitzero"`
}

// PriceBasis says when a price is charged.
type PriceBasis string

// Price bases.
const (
	BasisOneTime PriceBasis = "one_time"
	BasisMonthly PriceBasis = "monthly"
	BasisYearly  PriceBasis = "yearly"
	// BasisMetered: Amount per PerUnits units of Unit, billed monthly.
	BasisMetered PriceBasis = "metered"
)

// Price is a machine-readable price in minor units of an ISO 4217 currency
// (§2.6). Prices of one service add up.
type Price struct {
	Amount   int64      `json:"amount"`
	Currency string     `json:"currency"`
	Basis    PriceBasis `json:"basis"`
	// Unit names the metered unit (e.g. "request"); required for metered.
	Unit string `json:"unit,omitzero"`
	// PerUnits is the number of units Amount buys; 0 means 1.
	PerUnits int64 `json:"per_units,omitzero"`
	// MaxAmount bounds a variable price: the most a metered price can cost
	// per month, or the upper end of a price range. Nil means unbounded for
	// metered prices and exactly Amount otherwise.
	MaxAmount   *int64 `json:"max_amount,omitzero"`
	Description string `json:"description,omitzero"`
}

// Limits bound the work done on untrusted input. A zero field takes its
// default; a nil *Limits means all defaults.
type Limits struct {
	// MaxBytes bounds the document size (default 4 MiB; 64 KiB for
	// provider metadata).
	MaxBytes int64
	// MaxDepth bounds object/array nesting (default 32).
	MaxDepth int
	// MaxServices bounds the services of a catalog (default 2000).
	MaxServices int
	// MaxStringLen bounds every string, keys included, in bytes as
	// encoded (default 64 KiB).
	MaxStringLen int
}

// Default limits.
const (
	DefaultMaxBytes = 4 << 20
	// DefaultMaxMetadataBytes is the MaxBytes default of ParseMetadata.
	DefaultMaxMetadataBytes = 64 << 10
	DefaultMaxDepth         = 32
	DefaultMaxServices      = 2000
	DefaultMaxStringLen     = 64 << 10
)

// Ref names a service of a provider: "provider_id/service_id" (§2.5).
type Ref struct {
	Provider string
	Service  string
}

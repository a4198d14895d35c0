package authz

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"slices"

	"golang.org/x/oauth2"

	"github.com/agentprov/agentprov/internal/oauthwire"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// Well-known paths of the OAuth discovery documents (PROTOCOL §2.7).
const (
	PathResourceMetadata = "/.well-known/oauth-protected-resource"
	PathServerMetadata   = "/.well-known/oauth-authorization-server"
)

// MaxMetadataBytes bounds a fetched discovery document.
const MaxMetadataBytes = 64 << 10

// ErrInvalidMetadata reports a discovery document that could not be fetched
// or does not describe the expected resource or issuer.
var ErrInvalidMetadata = &Error{Code: "invalid_metadata", Status: http.StatusBadGateway}

// ProtectedResourceMetadata is the RFC 9728 §2 document a provider serves at
// /.well-known/oauth-protected-resource.
type ProtectedResourceMetadata struct {
	// Resource is the resource identifier (RFC 9728 §2, REQUIRED); a client
	// must check it equals the resource it asked about (§3.3).
	Resource string `json:"resource"`
	// AuthorizationServers lists issuer identifiers of RFC 8414 servers.
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	JWKSURI              string   `json:"jwks_uri,omitempty"`
	ScopesSupported      []string `json:"scopes_supported,omitempty"`
	// BearerMethodsSupported is ["header"]: tokens only in Authorization.
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`
	ResourceName           string   `json:"resource_name,omitempty"`
	ResourceDocumentation  string   `json:"resource_documentation,omitempty"`
	ResourcePolicyURI      string   `json:"resource_policy_uri,omitempty"`
	ResourceTOSURI         string   `json:"resource_tos_uri,omitempty"`
}

// AuthorizationServerMetadata is the RFC 8414 §2 document a provider serves
// at /.well-known/oauth-authorization-server, with the protocol's extension
// members prefixed agentprov_.
type AuthorizationServerMetadata struct {
	Issuer                                 string   `json:"issuer"`
	AuthorizationEndpoint                  string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                          string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint            string   `json:"device_authorization_endpoint,omitempty"`
	RevocationEndpoint                     string   `json:"revocation_endpoint,omitempty"`
	JWKSURI                                string   `json:"jwks_uri,omitempty"`
	ScopesSupported                        []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                 []string `json:"response_types_supported"`
	GrantTypesSupported                    []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported      []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	CodeChallengeMethodsSupported          []string `json:"code_challenge_methods_supported,omitempty"`
	// AuthorizationResponseIssParameterSupported is RFC 9207: the
	// authorization response carries "iss" against mix-up attacks.
	AuthorizationResponseIssParameterSupported bool   `json:"authorization_response_iss_parameter_supported,omitempty"`
	ServiceDocumentation                       string `json:"service_documentation,omitempty"`
	OpTOSURI                                   string `json:"op_tos_uri,omitempty"`
	// RevocationEventEndpoint receives signed revocation events (§4.9).
	RevocationEventEndpoint string `json:"agentprov_revocation_event_endpoint,omitempty"`
	// TermsVersion is the provider's current terms-of-service version, the
	// one a consent receipt must name for an account to be created.
	TermsVersion string `json:"agentprov_terms_version,omitempty"`
}

// Endpoint returns the golang.org/x/oauth2 endpoint of the server, with
// client authentication in the request body as public clients need.
func (m *AuthorizationServerMetadata) Endpoint() oauth2.Endpoint {
	return oauth2.Endpoint{
		AuthURL:       m.AuthorizationEndpoint,
		TokenURL:      m.TokenEndpoint,
		DeviceAuthURL: m.DeviceAuthorizationEndpoint,
		AuthStyle:     oauth2.AuthStyleInParams,
	}
}

// FetchResourceMetadata fetches the RFC 9728 document at metadataURL (from
// a resource_metadata challenge parameter, or built from the resource id)
// and, when resource is non-empty, checks that it describes resource. The
// URL, every redirect, and every authorization server named must be HTTPS
// or loopback; the body is bounded by MaxMetadataBytes. client may be nil
// for http.DefaultClient; it is never modified.
func FetchResourceMetadata(ctx context.Context, client *http.Client, metadataURL, resource string) (*ProtectedResourceMetadata, error) {
	var m ProtectedResourceMetadata
	if err := fetchJSON(ctx, client, metadataURL, &m); err != nil {
		return nil, err
	}
	if m.Resource == "" {
		return nil, errorf(ErrInvalidMetadata, nil, "resource metadata lacks \"resource\"")
	}
	if resource != "" && m.Resource != resource {
		return nil, errorf(ErrInvalidMetadata, nil, "resource metadata describes %q, not %q", m.Resource, resource)
	}
	for _, as := range m.AuthorizationServers {
		if _, err := safehttp.CheckURL(as); err != nil {
			return nil, errorf(ErrInvalidMetadata, err, "authorization server %q is not https", as)
		}
	}
	return &m, nil
}

// FetchServerMetadata fetches the RFC 8414 document of issuer and checks it:
// "issuer" equals issuer exactly (§3.3), every endpoint is HTTPS or loopback,
// and PKCE S256 is supported when an authorization endpoint is given.
func FetchServerMetadata(ctx context.Context, client *http.Client, issuer string) (*AuthorizationServerMetadata, error) {
	u, err := oauthwire.WellKnownURL(issuer, PathServerMetadata)
	if err != nil {
		return nil, errorf(ErrInvalidMetadata, err, "bad issuer %q", issuer)
	}
	var m AuthorizationServerMetadata
	if err := fetchJSON(ctx, client, u, &m); err != nil {
		return nil, err
	}
	if m.Issuer != issuer {
		return nil, errorf(ErrInvalidMetadata, nil, "metadata issuer %q is not %q", m.Issuer, issuer)
	}
	if m.TokenEndpoint == "" {
		return nil, errorf(ErrInvalidMetadata, nil, "metadata lacks token_endpoint")
	}
	for _, e := range []string{m.AuthorizationEndpoint, m.TokenEndpoint, m.DeviceAuthorizationEndpoint, m.RevocationEndpoint, m.JWKSURI, m.RevocationEventEndpoint} {
		if e == "" {
			continue
		}
		if _, err := safehttp.CheckURL(e); err != nil {
			return nil, errorf(ErrInvalidMetadata, err, "endpoint %q is not https", e)
		}
	}
	if m.AuthorizationEndpoint != "" && !slices.Contains(m.CodeChallengeMethodsSupported, oauthwire.PKCEMethod) {
		return nil, errorf(ErrInvalidMetadata, nil, "server does not support PKCE S256")
	}
	return &m, nil
}

func fetchJSON(ctx context.Context, client *http.Client, rawURL string, dst any) error {
	if _, err := safehttp.CheckURL(rawURL); err != nil {
		return errorf(ErrInvalidMetadata, err, "refusing to fetch %q", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return errorf(ErrInvalidMetadata, err, "bad metadata URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := oauthwire.SafeClient(client).Do(req)
	if err != nil {
		return errorf(ErrInvalidMetadata, err, "fetch %s", rawURL)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errorf(ErrInvalidMetadata, nil, "fetch %s: status %d", rawURL, resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return errorf(ErrInvalidMetadata, nil, "fetch %s: content type %q is not application/json", rawURL, mt)
	}
	body, err := safehttp.ReadAll(resp.Body, MaxMetadataBytes)
	if err != nil {
		return errorf(ErrInvalidMetadata, err, "read %s", rawURL)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return errorf(ErrInvalidMetadata, err, "decode %s", rawURL)
	}
	return nil
}

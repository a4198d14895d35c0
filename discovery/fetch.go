package discovery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/internal/problem"
	"github.com/agentprov/agentprov/internal/safehttp"
)

// Size limits of the small documents; the catalog's is
// AggregatorOptions.MaxBodyBytes.
const (
	maxMetadataBytes = 64 << 10
	maxJWKSBytes     = 64 << 10
	maxProblemBytes  = 4 << 10
)

// response is one bounded GET result.
type response struct {
	notModified bool
	body        []byte
	mediaType   string
	etag        string
}

// get fetches rawURL with the aggregator's client.
func (a *Aggregator) get(ctx context.Context, rawURL, etag string, limit int64, accept ...string) (*response, error) {
	return getDocument(ctx, a.client, rawURL, etag, limit, accept...)
}

// safeClient returns a shallow copy of base (nil: http.DefaultClient)
// whose redirect policy refuses other origins before applying base's own.
// base itself is never modified.
func safeClient(base *http.Client) *http.Client {
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	c.CheckRedirect = checkRedirect(base.CheckRedirect)
	return &c
}

// getDocument is the one way this package fetches a provider-supplied URL:
// HTTPS-or-loopback (safehttp.CheckURL) before any connection, redirects
// within the origin only (client comes from safeClient), an optional
// If-None-Match, the allowed media types, and at most limit bytes read
// (safehttp.ReadAll). The caller's ctx carries the deadline.
func getDocument(ctx context.Context, client *http.Client, rawURL, etag string, limit int64, accept ...string) (*response, error) {
	u, err := safehttp.CheckURL(rawURL)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", strings.Join(accept, ", "))
	req.Header.Set(VersionHeader, catalogschema.ProtocolVersion)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Drain a little so the connection can be reused, never unbounded.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close()
	}()
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return &response{notModified: true, etag: etag}, nil
	case resp.StatusCode != http.StatusOK:
		if p := problem.Read(io.LimitReader(resp.Body, maxProblemBytes), maxProblemBytes); p != nil && p.Code != "" {
			return nil, fmt.Errorf("%w %d (code %q)", ErrStatus, resp.StatusCode, p.Code)
		}
		return nil, fmt.Errorf("%w %d", ErrStatus, resp.StatusCode)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !contains(accept, mt) {
		return nil, fmt.Errorf("%w: got %q, want %s", ErrContentType, resp.Header.Get("Content-Type"), strings.Join(accept, " or "))
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w of %d bytes (Content-Length %d)", safehttp.ErrTooLarge, limit, resp.ContentLength)
	}
	body, err := safehttp.ReadAll(resp.Body, limit)
	if err != nil {
		return nil, err
	}
	return &response{body: body, mediaType: mt, etag: resp.Header.Get("ETag")}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkRedirect refuses redirects to another origin, then defers to the
// caller's own policy (or Go's default of 10 hops).
func checkRedirect(base func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		if !sameOrigin(first, req.URL) {
			return fmt.Errorf("%w: %s", ErrRedirect, req.URL.Redacted())
		}
		if _, err := safehttp.CheckURL(req.URL.String()); err != nil {
			return fmt.Errorf("%w: %w", ErrRedirect, err) // e.g. user info added
		}
		if base != nil {
			return base(req, via)
		}
		if len(via) >= 10 {
			return fmt.Errorf("%w: too many redirects", ErrRedirect)
		}
		return nil
	}
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Host, b.Host)
}

// parseMetadataResponse turns a metadata response into validated metadata
// for the trusted provider id ("" accepts any): media type, schema, provider id, and every URL
// the aggregator will follow must be HTTPS-or-loopback.
func parseMetadataResponse(providerID, contentType string, body []byte, lim *catalogschema.Limits) (*catalogschema.ProviderMetadata, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != MediaTypeJSON {
		return nil, fmt.Errorf("%w: got %q, want %s", ErrContentType, contentType, MediaTypeJSON)
	}
	if int64(len(body)) > maxMetadataBytes {
		return nil, fmt.Errorf("%w of %d bytes", safehttp.ErrTooLarge, maxMetadataBytes)
	}
	meta, err := catalogschema.ParseMetadata(body, lim)
	if err != nil {
		return nil, err
	}
	if providerID != "" && meta.ProviderID != providerID {
		return nil, fmt.Errorf("%w: metadata names %q", ErrProviderMismatch, meta.ProviderID)
	}
	if _, err := safehttp.CheckURL(meta.CatalogURI); err != nil {
		return nil, fmt.Errorf("catalog_uri: %w", err)
	}
	if meta.JWKSURI != "" {
		if _, err := safehttp.CheckURL(meta.JWKSURI); err != nil {
			return nil, fmt.Errorf("jwks_uri: %w", err)
		}
	}
	return meta, nil
}

// parseJWKS decodes a JWK set and keeps only public signature keys.
func parseJWKS(body []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	out := &jose.JSONWebKeySet{}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("jwks: key %q is not a public key", k.KeyID)
		}
		if k.Use == "" || k.Use == "sig" {
			out.Keys = append(out.Keys, k)
		}
	}
	return out, nil
}

// FetchOptions configures FetchMetadata. Nil means all defaults.
type FetchOptions struct {
	// ProviderID, if not empty, is the provider id the metadata must
	// carry (ErrProviderMismatch otherwise). Leave it empty on first
	// contact, when the id is what the user is about to trust.
	ProviderID string
	// Timeout bounds the whole fetch (default DefaultTimeout).
	Timeout time.Duration
	// Limits bound the parsing (catalogschema defaults if nil).
	Limits *catalogschema.Limits
}

// FetchMetadata fetches and validates the metadata document of the
// provider at baseURL (baseURL + MetadataPath; a baseURL that already ends
// in MetadataPath is used as is), with the same safeguards
// as Aggregator.Refresh: the URL must be https (or http on a loopback
// host) and is checked before any connection; redirects to another origin
// are refused (so a provider cannot bounce the request to, say,
// http://169.254.169.254/); the body is bounded at 64 KiB and must be
// application/json; the document must pass catalogschema.ParseMetadata and
// every URL in it that the library follows must be https-or-loopback.
//
// It is the entry point for code outside the Aggregator that meets a new
// provider, such as an orchestrator CLI's "init --provider URL": fetch,
// show the user what they are about to trust, then build a
// TrustedProvider from it. client may be nil (http.DefaultClient); it is
// never modified.
//
// Errors are a *FetchError with Op OpMetadata and Provider
// opts.ProviderID, matching the same sentinels as a Refresh failure; its
// Code method classifies it.
func FetchMetadata(ctx context.Context, client *http.Client, baseURL string, opts *FetchOptions) (*catalogschema.ProviderMetadata, error) {
	var o FetchOptions
	if opts != nil {
		o = *opts
	}
	fail := func(err error) (*catalogschema.ProviderMetadata, error) {
		return nil, &FetchError{Provider: o.ProviderID, Op: OpMetadata, Err: err}
	}
	if o.Timeout < 0 {
		return fail(errors.New("negative Timeout"))
	}
	if _, err := safehttp.CheckURL(baseURL); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(o.Timeout, DefaultTimeout))
	defer cancel()
	u := strings.TrimSuffix(baseURL, "/")
	if !strings.HasSuffix(u, MetadataPath) {
		u += MetadataPath
	}
	resp, err := getDocument(ctx, safeClient(client), u, "", maxMetadataBytes, MediaTypeJSON)
	if err != nil {
		return fail(err)
	}
	meta, err := parseMetadataResponse(o.ProviderID, resp.mediaType, resp.body, o.Limits)
	if err != nil {
		return fail(err)
	}
	return meta, nil
}

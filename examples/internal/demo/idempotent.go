package demo

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strings"

	"github.com/agentprov/agentprov/authz/provision"
	"github.com/agentprov/agentprov/internal/problem"
)

// keyedResourceID is the id of the resource an account creates under an
// Idempotency-Key: the same key of the same account always names the same
// resource, so a retry finds what the first attempt made.
func keyedResourceID(accountID, key string) string {
	sum := sha256.Sum256([]byte(accountID + "\x00" + key))
	return "res_" + strings.ToLower(idEncoding.EncodeToString(sum[:10]))
}

// findResource returns the account's resource with id, if any.
func (p *Provider) findResource(ctx context.Context, accountID, id string) (*Resource, error) {
	list, err := p.resources.ByAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].ID == id {
			return &list[i], nil
		}
	}
	return nil, nil
}

// discardWriter is the ResponseWriter of the identity probe: the answer
// of a failed bearer check is given by the real chain, not by the probe.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// replayCreate answers a create whose Idempotency-Key already made a
// resource for the caller's account with that resource (201,
// Idempotent-Replayed: true), before the paywall: a retry is neither
// charged nor provisioned twice. The same key with another name or
// configuration is 422 idempotency_conflict. Anything else goes to next.
func (p *Provider) replayCreate(ref string, next http.Handler) http.Handler {
	bearerCheck := p.Provisioner.Middleware()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		var bearer string
		for _, v := range r.Header.Values("Authorization") {
			if len(v) > 7 && strings.EqualFold(v[:7], "Bearer ") {
				bearer = v
			}
		}
		if key == "" || bearer == "" {
			next.ServeHTTP(w, r)
			return
		}
		// The bearer check alone, on a copy carrying only the Bearer token
		// (a paid retry carries the Payment credential too).
		probe := r.Clone(r.Context())
		probe.Header.Set("Authorization", bearer)
		probe.Body = http.NoBody
		var id *provision.Identity
		var ok bool
		bearerCheck(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			id, ok = provision.IdentityFromContext(r.Context())
		})).ServeHTTP(&discardWriter{h: http.Header{}}, probe)
		if !ok || id == nil || id.Service != ref {
			next.ServeHTTP(w, r)
			return
		}
		existing, err := p.findResource(r.Context(), id.AccountID, keyedResourceID(id.AccountID, key))
		if err != nil {
			problem.Write(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
			return
		}
		if existing == nil {
			next.ServeHTTP(w, r)
			return
		}
		var req createRequest
		if err := decodeBody(r, &req); err != nil {
			problem.Write(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		if req.Name == "" {
			req.Name = DefaultName(ref)
		}
		if req.Name != existing.Name || !equalConfig(req.Config, existing.Config) {
			problem.Write(w, http.StatusUnprocessableEntity, "idempotency_conflict", "Idempotency-Key was used with a different request")
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, http.StatusCreated, existing)
	})
}

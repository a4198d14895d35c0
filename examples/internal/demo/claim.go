package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/agentprov/agentprov/authz/vault"
	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/catalogschema"
	"github.com/agentprov/agentprov/payment"
)

// StatusPending is the Status of a resource whose name is reserved by an
// add that has not finished: its create call may or may not have reached
// the provider. Rerunning the same add finishes it.
const StatusPending = "pending"

// DefaultAddLease is how long a reservation stays with the add that holds
// it without being renewed; a retry of an add whose process died takes
// the name over after it.
const DefaultAddLease = 15 * time.Second

// NameConflictError is returned when an add cannot have the name it asks
// for: another resource holds it, another add of it is in flight, or a
// pending add of it was for a different service or configuration. It
// matches ErrExists.
type NameConflictError struct {
	Project string
	Name    string
	// Service is the ref the name is held for.
	Service string
	// State is the holder's status: "active" or StatusPending.
	State string
	// InFlight is set when another add holds the pending name right now;
	// RetryAfter is when its lease ends if it is not renewed.
	InFlight   bool
	RetryAfter time.Duration
	// SameRequest is set when the holder is the same add (same service and
	// configuration): a retry after RetryAfter finishes it.
	SameRequest bool
}

// Error says who holds the name and whether a retry would finish it.
func (e *NameConflictError) Error() string {
	switch {
	case e.State == StatusPending && e.InFlight && e.SameRequest:
		return fmt.Sprintf("the name %q is being added by another run (%s); retry in %ds to finish it", e.Name, e.Service, int(e.RetryAfter.Round(time.Second)/time.Second))
	case e.State == StatusPending && e.SameRequest:
		return fmt.Sprintf("the name %q is held by an unfinished add of %s; rerun the same add to finish it", e.Name, e.Service)
	case e.State == StatusPending:
		return fmt.Sprintf("the name %q is reserved by an unfinished add of %s with other arguments", e.Name, e.Service)
	}
	return fmt.Sprintf("the name %q is taken by %s", e.Name, e.Service)
}

// Is makes a NameConflictError match ErrExists.
func (e *NameConflictError) Is(target error) bool { return target == ErrExists }

// Claim asks a ResourceStore to reserve a name for one add. A plain value.
type Claim struct {
	Project string
	Name    string
	// Service is the service ref; Config the add's configuration.
	Service string
	Config  json.RawMessage
	// Fingerprint identifies the add (service and configuration): only an
	// add with the same fingerprint may take a pending name over.
	Fingerprint string
	// Key is the idempotency key to store with a new reservation.
	Key string
	// Owner identifies the add holding the lease, until Until.
	Owner string
	Now   time.Time
	Until time.Time
}

// Claimed is the outcome of a successful Claim. A plain value.
type Claimed struct {
	// Key is the reservation's idempotency key: Claim.Key for a new
	// reservation, the stored one when a pending add was taken over.
	Key string
	// Fresh is set when the reservation is new (no earlier attempt).
	Fresh bool
}

// ErrLeaseLost is returned by Renew when the caller no longer holds the
// reservation.
var ErrLeaseLost = errors.New("demo: reservation lease lost")

// claimRecord is the pending Resource stored by a new reservation.
func claimRecord(c Claim) Resource {
	return Resource{Project: c.Project, Name: c.Name, Service: c.Service, Config: c.Config,
		Status: StatusPending, CreatedAt: c.Now.UTC()}
}

// AddFingerprint identifies one add: the service ref and its configuration
// in canonical JSON (an absent configuration is {}).
func AddFingerprint(ref string, config json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(orEmpty(config), &v); err != nil {
		return "", fmt.Errorf("demo: config: %w", err)
	}
	canon, err := json.Marshal(v) // object keys sorted
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append([]byte(ref+"\n"), canon...))
	return hex.EncodeToString(sum[:]), nil
}

// DefaultName is the resource name of an add without one: the service id
// with ":" replaced by "-".
func DefaultName(ref string) string {
	_, service, _ := strings.Cut(ref, "/")
	return strings.ReplaceAll(service, ":", "-")
}

// ReserveRequest names the add to reserve. A plain value.
type ReserveRequest struct {
	Project string
	Ref     string
	// Name defaults to DefaultName(Ref).
	Name   string
	Config json.RawMessage
}

// Reservation is a name held for one add, with the idempotency key its
// provider call and payment use. Its lease is renewed until Finish. Not
// safe for concurrent use.
type Reservation struct {
	Project, Name, Ref string
	Config             json.RawMessage
	// Key is the persisted idempotency key of the add.
	Key string
	// Fresh is set when no earlier attempt of this add existed.
	Fresh bool

	store  ResourceStore
	owner  string
	sent   bool
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

// Reserve reserves req.Name in the project's ResourceStore with one atomic
// put-if-absent, before anything is sent to a provider. A second add of
// the same name gets a *NameConflictError unless it is the same add (same
// service and configuration) whose earlier attempt ended (failed, or its
// process died and its lease ran out): it then takes the reservation over
// with the stored idempotency key, so that it finishes that attempt and
// never creates a second resource. Call Finish when done.
func (o *Orchestrator) Reserve(ctx context.Context, req ReserveRequest) (*Reservation, error) {
	ref, err := catalogschema.ParseRef(req.Ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotFound, req.Ref, err)
	}
	r := &Reservation{Project: req.Project, Ref: ref.String(), Name: req.Name, Config: req.Config, store: o.Resources}
	if r.Name == "" {
		r.Name = DefaultName(r.Ref)
	}
	fp, err := AddFingerprint(r.Ref, req.Config)
	if err != nil {
		return nil, err
	}
	lease := o.cfg.AddLease
	if lease <= 0 {
		lease = DefaultAddLease
	}
	r.owner = newID("own_")
	now := o.now()
	got, err := o.Resources.Claim(ctx, Claim{Project: r.Project, Name: r.Name, Service: r.Ref, Config: req.Config,
		Fingerprint: fp, Key: newID("add_"), Owner: r.owner, Now: now, Until: now.Add(lease)})
	if err != nil {
		return nil, err
	}
	r.Key, r.Fresh = got.Key, got.Fresh
	hctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = stop
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				now := o.now()
				if err := o.Resources.Renew(hctx, r.Project, r.Name, r.owner, now.Add(lease)); err != nil && hctx.Err() == nil {
					o.log.Warn("demo: reservation renewal failed", "name", r.Name, "err", err)
				}
			}
		}
	}()
	return r, nil
}

// Finish ends the reservation after the add ended with err. On success
// the resource is recorded already. An add that never reached the
// provider's create call (a new reservation), or that the provider
// definitely refused, gives the name back; any other failure leaves the
// resource pending with its key, free for a retry to finish.
func (r *Reservation) Finish(ctx context.Context, err error) {
	if r == nil || r.closed {
		return
	}
	r.closed = true
	r.stop()
	r.wg.Wait()
	ctx = context.WithoutCancel(ctx)
	if err == nil {
		return
	}
	if (r.Fresh && !r.sent) || (r.sent && definiteRefusal(err)) {
		_ = r.store.Abandon(ctx, r.Project, r.Name, r.owner)
		return
	}
	_ = r.store.Release(ctx, r.Project, r.Name, r.owner)
}

// definiteRefusal reports whether err from the create call means the
// provider created nothing under the key: a payment refusal before paying,
// or a 4xx answer other than a transient one.
func definiteRefusal(err error) bool {
	var pe *ProviderError
	if errors.As(err, &pe) {
		switch pe.Status {
		case 0, http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
			return false
		}
		return pe.Status >= 400 && pe.Status < 500
	}
	var payErr *payment.Error
	return errors.As(err, &payErr)
}

// memory implementation of the reservation primitives.

type memoryClaim struct {
	fingerprint, key, owner string
	until                   time.Time
}

// Claim reserves c.Name; see ResourceStore.
func (s *MemoryResources) Claim(_ context.Context, c Claim) (*Claimed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{c.Project, c.Name}
	existing, ok := s.m[k]
	if !ok {
		s.m[k] = claimRecord(c)
		s.claims[k] = &memoryClaim{fingerprint: c.Fingerprint, key: c.Key, owner: c.Owner, until: c.Until}
		return &Claimed{Key: c.Key, Fresh: true}, nil
	}
	cl := s.claims[k]
	if existing.Status != StatusPending || cl == nil {
		return nil, &NameConflictError{Project: c.Project, Name: c.Name, Service: existing.Service, State: existing.Status}
	}
	same := cl.fingerprint == c.Fingerprint
	if !same || c.Now.Before(cl.until) {
		return nil, &NameConflictError{Project: c.Project, Name: c.Name, Service: existing.Service, State: StatusPending,
			InFlight: c.Now.Before(cl.until), RetryAfter: max(cl.until.Sub(c.Now), 0), SameRequest: same}
	}
	cl.owner, cl.until = c.Owner, c.Until
	return &Claimed{Key: cl.key}, nil
}

// Renew extends owner's lease of a pending name.
func (s *MemoryResources) Renew(_ context.Context, project, name, owner string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.claims[[2]string{project, name}]
	if cl == nil || cl.owner != owner {
		return ErrLeaseLost
	}
	cl.until = until
	return nil
}

// Release ends owner's lease; the name stays pending.
func (s *MemoryResources) Release(_ context.Context, project, name, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl := s.claims[[2]string{project, name}]; cl != nil && cl.owner == owner {
		cl.owner, cl.until = "", time.Time{}
	}
	return nil
}

// Abandon deletes owner's pending reservation.
func (s *MemoryResources) Abandon(_ context.Context, project, name, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{project, name}
	if cl := s.claims[k]; cl != nil && cl.owner == owner && s.m[k].Status == StatusPending {
		delete(s.claims, k)
		delete(s.m, k)
	}
	return nil
}

// equalConfig compares two configurations as canonical JSON.
func equalConfig(a, b json.RawMessage) bool {
	fa, errA := AddFingerprint("", a)
	fb, errB := AddFingerprint("", b)
	return errA == nil && errB == nil && fa == fb
}

// Discarded is what Discard did with an interrupted add. A plain value.
type Discarded struct {
	Project, Name string
	// Service is the add's service ref.
	Service string
	// AtProvider is the resource the interrupted add had made at the
	// provider, removed there now; nil when the provider had made none.
	// Its Charged field says what the provider was paid: removing a
	// resource is not a refund.
	AtProvider *Resource
}

// Discard cleans up a pending resource that an interrupted add left: it
// takes the add's reservation over (a *NameConflictError with InFlight
// set while a live add still holds it), asks the provider whether the
// create under the add's idempotency key happened, removes that resource
// at the provider if so, and then gives the name back. The last resource
// of a service takes its credential with it, as in Remove. Any failure
// before the name is given back leaves it pending for a later Discard or
// a retry of the add: nothing is forgotten that may exist at the
// provider.
func (o *Orchestrator) Discard(ctx context.Context, project, name string) (*Discarded, error) {
	res, err := o.Resources.Get(ctx, project, name)
	if err != nil {
		return nil, err
	}
	if res.Status != StatusPending {
		return nil, fmt.Errorf("%w: %s is %s, not an unfinished add (remove it instead)", ErrExists, name, res.Status)
	}
	fp, err := AddFingerprint(res.Service, res.Config)
	if err != nil {
		return nil, err
	}
	lease := o.cfg.AddLease
	if lease <= 0 {
		lease = DefaultAddLease
	}
	owner := newID("own_")
	now := o.now()
	got, err := o.Resources.Claim(ctx, Claim{Project: project, Name: name, Service: res.Service, Config: res.Config,
		Fingerprint: fp, Key: newID("add_"), Owner: owner, Now: now, Until: now.Add(lease)})
	if err != nil {
		return nil, err
	}
	out := &Discarded{Project: project, Name: name, Service: res.Service}
	if got.Fresh {
		// The record went away between the read and the claim: this
		// reservation is ours and new, with nothing behind it.
		_ = o.Resources.Abandon(context.WithoutCancel(ctx), project, name, owner)
		return nil, fmt.Errorf("%w: resource %q", ErrNotFound, name)
	}
	made, err := o.createdUnder(ctx, project, res.Service, got.Key)
	if err == nil && made != nil && made.Status != "removed" {
		err = o.deleteAtProvider(ctx, project, res.Service, made)
	}
	if err != nil {
		_ = o.Resources.Release(context.WithoutCancel(ctx), project, name, owner)
		return nil, err
	}
	out.AtProvider = made
	if err := o.Resources.Abandon(ctx, project, name, owner); err != nil {
		return nil, err
	}
	if err := o.dropCredentialIfLast(ctx, project, res.Service); err != nil {
		return out, fmt.Errorf("%s cleaned up, but %w", name, err)
	}
	return out, nil
}

// createdUnder asks service's provider for the resource its create under
// the idempotency key made, if any. Without a credential for the service
// no create can have been sent (the create call needs its bearer token).
func (o *Orchestrator) createdUnder(ctx context.Context, project, service, key string) (*Resource, error) {
	if _, err := o.Vault.Get(ctx, project, service); errors.Is(err, vault.ErrCredentialNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	client, err := o.AgentClient(project, service, budget.USD(1))
	if err != nil {
		return nil, err
	}
	provider, _, _ := strings.Cut(service, "/")
	base, _ := o.baseURL(provider)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/resources?idempotency_key="+url.QueryEscape(key), nil)
	if err != nil {
		return nil, err
	}
	var list []Resource
	if err := o.do(client, provider, "look up the unfinished add", hreq, &list); err != nil {
		return nil, err
	}
	switch len(list) {
	case 0:
		return nil, nil
	case 1:
		return &list[0], nil
	}
	return nil, &ProviderError{Provider: provider, Op: "look up the unfinished add",
		Err: fmt.Errorf("%d resources answer one idempotency key", len(list))}
}

// deleteAtProvider deletes res at service's provider; already gone is
// not an error.
func (o *Orchestrator) deleteAtProvider(ctx context.Context, project, service string, res *Resource) error {
	client, err := o.AgentClient(project, service, budget.USD(1))
	if err != nil {
		return err
	}
	provider, _, _ := strings.Cut(service, "/")
	base, _ := o.baseURL(provider)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodDelete, base+"/v1/resources/"+url.PathEscape(res.ID), nil)
	if err != nil {
		return err
	}
	if err := o.do(client, provider, "remove "+res.Name, hreq, nil); err != nil {
		var pe *ProviderError
		if !errors.As(err, &pe) || pe.Status != http.StatusNotFound {
			return err
		}
	}
	res.Status = "removed"
	return nil
}

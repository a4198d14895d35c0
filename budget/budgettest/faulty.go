package budgettest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
)

// ErrInjected is the error a Faulty store injects.
var ErrInjected = errors.New("budgettest: injected store failure")

// Fault says how a Faulty store fails a call.
type Fault int

const (
	// FailBefore fails the call without passing it to the store: nothing
	// happened.
	FailBefore Fault = iota + 1
	// LoseReply passes the call to the store, which performs it, then
	// reports failure: the reply was lost (a timeout, a dropped connection).
	LoseReply
)

// Faulty wraps a Store and fails chosen calls, to show that the Ledger fails
// closed and never counts twice. Method names are those of budget.Store
// ("Reserve", "Transition", "ApplyUsage", "SetCap", "Usage", "MarkAlert",
// "Hold", "CapHistory", "Windows"). It is safe for concurrent use.
type Faulty struct {
	Store budget.Store

	mu    sync.Mutex
	rules map[string][]Fault
}

// NewFaulty wraps s.
func NewFaulty(s budget.Store) *Faulty { return &Faulty{Store: s, rules: map[string][]Fault{}} }

// Inject makes the next calls of method fail with fault, once per fault
// given, in order.
func (f *Faulty) Inject(method string, faults ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[method] = append(f.rules[method], faults...)
}

func (f *Faulty) next(method string) Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.rules[method]
	if len(q) == 0 {
		return 0
	}
	f.rules[method] = q[1:]
	return q[0]
}

var _ budget.Store = (*Faulty)(nil)

// Reserve implements budget.Store, failing as injected.
func (f *Faulty) Reserve(ctx context.Context, req *budget.ReserveRequest) (budget.Hold, bool, error) {
	switch f.next("Reserve") {
	case FailBefore:
		return budget.Hold{}, false, ErrInjected
	case LoseReply:
		_, _, _ = f.Store.Reserve(ctx, req)
		return budget.Hold{}, false, ErrInjected
	}
	return f.Store.Reserve(ctx, req)
}

// Transition implements budget.Store, failing as injected.
func (f *Faulty) Transition(ctx context.Context, req *budget.TransitionRequest) (budget.Hold, error) {
	switch f.next("Transition") {
	case FailBefore:
		return budget.Hold{}, ErrInjected
	case LoseReply:
		_, _ = f.Store.Transition(ctx, req)
		return budget.Hold{}, ErrInjected
	}
	return f.Store.Transition(ctx, req)
}

// Hold implements budget.Store, failing as injected.
func (f *Faulty) Hold(ctx context.Context, id string) (budget.Hold, error) {
	if f.next("Hold") != 0 {
		return budget.Hold{}, ErrInjected
	}
	return f.Store.Hold(ctx, id)
}

// ApplyUsage implements budget.Store, failing as injected.
func (f *Faulty) ApplyUsage(ctx context.Context, req *budget.UsageRequest) (budget.UsageEntry, bool, error) {
	switch f.next("ApplyUsage") {
	case FailBefore:
		return budget.UsageEntry{}, false, ErrInjected
	case LoseReply:
		_, _, _ = f.Store.ApplyUsage(ctx, req)
		return budget.UsageEntry{}, false, ErrInjected
	}
	return f.Store.ApplyUsage(ctx, req)
}

// SetCap implements budget.Store, failing as injected.
func (f *Faulty) SetCap(ctx context.Context, rec budget.CapRecord) (budget.CapRecord, error) {
	switch f.next("SetCap") {
	case FailBefore:
		return budget.CapRecord{}, ErrInjected
	case LoseReply:
		_, _ = f.Store.SetCap(ctx, rec)
		return budget.CapRecord{}, ErrInjected
	}
	return f.Store.SetCap(ctx, rec)
}

// CapHistory implements budget.Store, failing as injected.
func (f *Faulty) CapHistory(ctx context.Context, project string) ([]budget.CapRecord, error) {
	if f.next("CapHistory") != 0 {
		return nil, ErrInjected
	}
	return f.Store.CapHistory(ctx, project)
}

// Usage implements budget.Store, failing as injected.
func (f *Faulty) Usage(ctx context.Context, checks []budget.CapCheck, now time.Time) ([]budget.CounterUsage, error) {
	if f.next("Usage") != 0 {
		return nil, ErrInjected
	}
	return f.Store.Usage(ctx, checks, now)
}

// Windows implements budget.Store, failing as injected.
func (f *Faulty) Windows(ctx context.Context, project, provider string, period budget.Period, now time.Time) ([]budget.CounterUsage, error) {
	if f.next("Windows") != 0 {
		return nil, ErrInjected
	}
	return f.Store.Windows(ctx, project, provider, period, now)
}

// MarkAlert implements budget.Store, failing as injected.
func (f *Faulty) MarkAlert(ctx context.Context, key string, at time.Time) (bool, error) {
	switch f.next("MarkAlert") {
	case FailBefore:
		return false, ErrInjected
	case LoseReply:
		_, _ = f.Store.MarkAlert(ctx, key, at)
		return false, ErrInjected
	}
	return f.Store.MarkAlert(ctx, key, at)
}

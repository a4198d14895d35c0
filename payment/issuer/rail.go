package issuer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/payment"
)

// ChargeRequest asks a Rail to move money for one redemption.
// IdempotencyKey is the hold id: every retry of one redemption's settlement
// carries the same key, so a rail that honours it never charges twice.
type ChargeRequest struct {
	IdempotencyKey string
	Amount         budget.Money
	Project        string
	Provider       string
	Service        string
	HoldID         string
}

// ChargeResult is a confirmed charge. ChargeRequest and ChargeResult are
// plain values.
type ChargeResult struct {
	// Reference is the rail's identifier of the charge (a payment intent id…).
	Reference string
}

// Rail settles committed redemptions on a real payment network.
//
// Charge must be idempotent by IdempotencyKey: a repeat of a key already
// charged returns the original result without charging again, even when the
// first call's caller gave up before the answer. Errors are classified: an
// error matching ErrRailRefused (errors.Is) is definitive and the Issuer
// reverses the spend; every other error, including context cancellation,
// is transient and the outbox retries with the same key.
//
// Implementations must be safe for concurrent use.
type Rail interface {
	Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error)
}

// MemoryCharge is one charge recorded by a MemoryRail (a copy; plain value).
type MemoryCharge struct {
	ChargeRequest
	Reference string
	// Calls counts the Charge calls that carried this key.
	Calls int
}

// MemoryRailOptions tune a MemoryRail. The zero value is usable.
type MemoryRailOptions struct {
	// ReferencePrefix prefixes charge references; default "mem_".
	ReferencePrefix string
}

// MemoryRail is an in-process Rail for tests and examples. It dedupes by
// idempotency key, records every charge, and has fault knobs that apply to
// the next calls: FailNext (transient error, nothing charged), DelayNext
// (the charge is made but the answer comes only after a delay or the
// caller's deadline, whichever is first — "succeeded after the caller gave
// up"), and Refuse (definitive refusal for a key). It is safe for
// concurrent use.
type MemoryRail struct {
	prefix string

	mu        sync.Mutex
	charges   map[string]*MemoryCharge
	order     []string
	calls     int
	failNext  int
	failErr   error
	delayN    int
	delay     time.Duration
	refuse    map[string]bool
	refuseAll bool
}

// NewMemoryRail returns an empty MemoryRail.
func NewMemoryRail(opts *MemoryRailOptions) *MemoryRail {
	p := "mem_"
	if opts != nil && opts.ReferencePrefix != "" {
		p = opts.ReferencePrefix
	}
	return &MemoryRail{prefix: p, charges: map[string]*MemoryCharge{}, refuse: map[string]bool{}}
}

// ErrRailUnavailable is the transient error a MemoryRail returns from FailNext.
var ErrRailUnavailable = errors.New("payment: memory rail: unavailable (injected fault)")

// FailNext makes the next n calls fail transiently without charging.
func (m *MemoryRail) FailNext(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failNext, m.failErr = n, ErrRailUnavailable
}

// DelayNext makes the next n calls charge at once but answer only after d
// or when the caller's context ends, whichever comes first.
func (m *MemoryRail) DelayNext(n int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delayN, m.delay = n, d
}

// Refuse makes every future charge for key (a hold id) a definitive
// refusal; key "" refuses every key.
func (m *MemoryRail) Refuse(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if key == "" {
		m.refuseAll = true
		return
	}
	m.refuse[key] = true
}

// Charge implements Rail.
func (m *MemoryRail) Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error) {
	if req.IdempotencyKey == "" {
		return ChargeResult{}, fmt.Errorf("%w: memory rail: idempotency key is required", payment.ErrRailRefused)
	}
	m.mu.Lock()
	m.calls++
	if c, ok := m.charges[req.IdempotencyKey]; ok {
		c.Calls++
		ref := c.Reference
		m.mu.Unlock()
		if c.Amount != req.Amount {
			return ChargeResult{}, fmt.Errorf("%w: memory rail: key reused with another amount", payment.ErrRailRefused)
		}
		return ChargeResult{Reference: ref}, nil
	}
	if m.failNext > 0 {
		m.failNext--
		err := m.failErr
		m.mu.Unlock()
		return ChargeResult{}, err
	}
	if m.refuseAll || m.refuse[req.IdempotencyKey] {
		m.mu.Unlock()
		return ChargeResult{}, payment.ErrRailRefused.With(nil, "memory rail refused %s", req.IdempotencyKey)
	}
	c := &MemoryCharge{ChargeRequest: req, Reference: fmt.Sprintf("%s%d", m.prefix, len(m.order)+1), Calls: 1}
	m.charges[req.IdempotencyKey] = c
	m.order = append(m.order, req.IdempotencyKey)
	var delay time.Duration
	if m.delayN > 0 {
		m.delayN--
		delay = m.delay
	}
	m.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ChargeResult{}, ctx.Err()
		}
	}
	return ChargeResult{Reference: c.Reference}, nil
}

// Charges returns the distinct charges made, in order.
func (m *MemoryRail) Charges() []MemoryCharge {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]MemoryCharge, 0, len(m.order))
	for _, k := range m.order {
		out = append(out, *m.charges[k])
	}
	return out
}

// Total sums the charged amounts in currency.
func (m *MemoryRail) Total(currency string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var t int64
	for _, c := range m.charges {
		if c.Amount.Currency == currency {
			t += c.Amount.Amount
		}
	}
	return t
}

// Calls counts every Charge call, repeats included.
func (m *MemoryRail) Calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

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

// update writes next over its stored version (compare-and-set) and bumps
// next.Version on success.
func (i *Issuer) update(ctx context.Context, next *Redemption) error {
	next.Version++
	next.UpdatedAt = i.now.Now().UTC()
	if err := i.store.Update(ctx, *next); err != nil {
		next.Version--
		if errors.Is(err, payment.ErrConflict) {
			return payment.ErrConflict
		}
		return storeErr(err)
	}
	return nil
}

func (i *Issuer) backoff(attempts int) time.Duration {
	d := i.minBackoff
	for n := 1; n < attempts && d < i.maxBack; n++ {
		d *= 2
	}
	return min(d, i.maxBack)
}

// lease is how long a claimed record is left to its claimer before the
// outbox takes it over.
func (i *Issuer) lease() time.Duration { return i.settleTimeout + 15*time.Second }

// advance drives rec through the state machine as far as it can go now.
// owned says the caller holds the record's lease (it made the last
// transition); otherwise a record whose lease has not run out is left to
// its owner and returned unchanged. Every side effect (Commit, Charge,
// Reverse, Release) is idempotent and keyed by the hold id, so a lost race
// or a crash between the effect and the record update only repeats it.
func (i *Issuer) advance(ctx context.Context, rec Redemption, owned bool) (Redemption, error) {
	for {
		if rec.State.Final() {
			return rec, nil
		}
		now := i.now.Now()
		if rec.State == payment.StateIssued {
			if now.Before(rec.ExpiresAt.Add(i.leeway)) {
				return rec, nil
			}
			next := rec
			next.State, next.Reason, next.NextAttemptAt = payment.StateRevoking, "expired", now
			if err := i.update(ctx, &next); err != nil {
				return i.reload(ctx, rec, err)
			}
			rec, owned = next, true
			continue
		}
		// Claim the record (a compare-and-set that sets a lease) before a
		// side effect, unless our own last transition already did. A charge
		// always starts from settling, so a crash mid-charge is visible.
		if !owned || rec.State == payment.StateCommitted {
			if !owned && rec.NextAttemptAt.After(now) {
				return rec, nil // someone else's lease, or a retry not yet due
			}
			next := rec
			next.NextAttemptAt = now.Add(i.lease())
			if next.State == payment.StateCommitted || next.State == payment.StateSettling {
				next.State = payment.StateSettling
				next.Attempts++
			}
			if err := i.update(ctx, &next); err != nil {
				return i.reload(ctx, rec, err)
			}
			rec, owned = next, true
		}
		next, err := i.step(ctx, rec)
		if err != nil {
			// Transient: keep the state, schedule the retry, give up the lease.
			retry := rec
			retry.NextAttemptAt = now.Add(i.backoff(max(rec.Attempts, 1)))
			retry.LastError = truncate(err.Error(), 200)
			if uerr := i.update(ctx, &retry); uerr == nil {
				rec = retry
			}
			i.log.WarnContext(ctx, "payment: redemption step failed; will retry", "hold", rec.HoldID, "state", string(rec.State), "attempts", rec.Attempts, "err", err)
			return rec, err
		}
		if err := i.update(ctx, &next); err != nil {
			return i.reload(ctx, rec, err)
		}
		rec = next
		if rec.State.Final() || rec.State == payment.StateRefused {
			i.notify(ctx, rec)
		}
		// We made the transition, so we keep the lease for the next step.
		owned = true
	}
}

// reload handles a failed update: a lost compare-and-set means someone
// else moved the record, so continue from what is stored now.
func (i *Issuer) reload(ctx context.Context, rec Redemption, err error) (Redemption, error) {
	if !errors.Is(err, payment.ErrConflict) {
		return rec, err
	}
	cur, gerr := i.store.Get(ctx, rec.HoldID)
	if gerr != nil {
		return rec, storeErr(gerr)
	}
	return i.advance(ctx, cur, false)
}

// step performs the side effect of rec's state and returns the next record
// (not yet stored). An error means a transient failure.
func (i *Issuer) step(ctx context.Context, rec Redemption) (Redemption, error) {
	next := rec
	next.NextAttemptAt = i.now.Now().Add(i.lease())
	switch rec.State {
	case payment.StatePending:
		_, err := i.holds.Commit(ctx, rec.HoldID, rec.Amount)
		if holdGone(err) {
			// The hold ended before the commit (expired or released): no
			// money moves. Release is a no-op on an ended hold.
			next.State, next.Reason = payment.StateVoid, "hold ended before commit"
			next.NextAttemptAt = time.Time{}
			return next, nil
		}
		if err != nil {
			return rec, fmt.Errorf("commit: %w", err)
		}
		rc := i.receiptOf(rec)
		signed, err := payment.SignReceipt(i.rcptSig, &rc)
		if err != nil {
			return rec, fmt.Errorf("sign receipt: %w", err)
		}
		next.State, next.Receipt = payment.StateCommitted, signed
		next.NextAttemptAt = time.Time{} // due at once for the outbox
	case payment.StateCommitted, payment.StateSettling:
		cctx, cancel := context.WithTimeout(ctx, i.settleTimeout)
		res, err := i.rail.Charge(cctx, ChargeRequest{
			IdempotencyKey: rec.HoldID, Amount: rec.Amount, Project: rec.Project,
			Provider: rec.Provider, Service: rec.Service, HoldID: rec.HoldID,
		})
		cancel()
		switch {
		case err == nil:
			next.State, next.Reference, next.LastError = payment.StateSettled, res.Reference, ""
			next.NextAttemptAt = time.Time{}
		case errors.Is(err, payment.ErrRailRefused):
			next.State, next.Reason = payment.StateRefused, truncate(err.Error(), 200)
			next.NextAttemptAt = time.Time{}
		default:
			return rec, fmt.Errorf("charge: %w", err)
		}
	case payment.StateRefused:
		if _, err := i.holds.Reverse(ctx, rec.HoldID, "settlement refused"); err != nil && !errors.Is(err, budget.ErrHoldEnded) {
			return rec, fmt.Errorf("reverse: %w", err)
		}
		next.State, next.NextAttemptAt = payment.StateReversed, time.Time{}
	case payment.StateRevoking:
		if _, err := i.holds.Release(ctx, rec.HoldID); err != nil && !holdGone(err) {
			return rec, fmt.Errorf("release: %w", err)
		}
		next.State, next.NextAttemptAt = payment.StateRevoked, time.Time{}
	default:
		return rec, fmt.Errorf("unexpected state %q", rec.State)
	}
	return next, nil
}

func holdGone(err error) bool {
	return errors.Is(err, budget.ErrHoldExpired) || errors.Is(err, budget.ErrHoldEnded) || errors.Is(err, budget.ErrHoldNotFound)
}

func (i *Issuer) notify(ctx context.Context, rec Redemption) {
	i.log.DebugContext(ctx, "payment: redemption reached "+string(rec.State), "hold", rec.HoldID, "provider", rec.Provider, "amount", rec.Amount.String())
	if i.onFinal != nil {
		i.onFinal(ctx, rec)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// SettlePending is the outbox: it drives every non-final redemption record
// whose retry is due — commits left pending by a crash, charges not yet
// confirmed (retried with the same idempotency key, the hold id),
// refusals not yet reversed, and unredeemed tokens past their expiry
// (their holds are released). It returns how many records it looked at and
// the first error met; a failing record does not stop the others.
// Up to IssuerOptions.OutboxWorkers records are driven at once, so a slow
// rail does not hold up the rest. Run it periodically (see Settler) and at
// start-up.
func (i *Issuer) SettlePending(ctx context.Context) (int, error) {
	const batch = 100
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, i.outboxWorkers)
	n := 0
	seen := map[string]bool{}
	for {
		due, err := i.store.Due(ctx, i.now.Now(), batch)
		if err != nil {
			wg.Wait()
			return n, storeErr(err)
		}
		progressed := false
		for _, rec := range due {
			if seen[rec.HoldID] {
				continue
			}
			seen[rec.HoldID], progressed = true, true
			n++
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return n, ctx.Err()
			}
			wg.Go(func() {
				defer func() { <-sem }()
				if _, err := i.advance(ctx, rec, false); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			})
		}
		// Finish this page before reading the next: the records just driven
		// are final or scheduled later, and seen guards against repeats.
		wg.Wait()
		if !progressed || len(due) < batch {
			return n, first
		}
	}
}

// SettlerOptions configure a Settler; read once by NewSettler.
type SettlerOptions struct {
	// Interval between outbox passes; default 5 seconds.
	Interval time.Duration
}

// Settler runs an Issuer's outbox in a loop. It is safe for concurrent use,
// though one Run per process is enough.
type Settler struct {
	iss      *Issuer
	interval time.Duration
}

// NewSettler returns a Settler for iss.
func NewSettler(iss *Issuer, opts *SettlerOptions) (*Settler, error) {
	if iss == nil {
		return nil, errors.New("payment: settler: issuer is required")
	}
	s := &Settler{iss: iss, interval: 5 * time.Second}
	if opts != nil && opts.Interval > 0 {
		s.interval = opts.Interval
	}
	return s, nil
}

// Run calls SettlePending at once and then every Interval until ctx ends,
// and returns ctx's error. Failures are logged and retried on the next pass.
func (s *Settler) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if n, err := s.iss.SettlePending(ctx); err != nil && ctx.Err() == nil {
			s.iss.log.WarnContext(ctx, "payment: outbox pass had failures", "records", n, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

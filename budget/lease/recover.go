package lease

import (
	"context"
	"errors"
	"log/slog"

	"github.com/agentprov/agentprov/budget"
)

// Recovery reports what Recover settled.
type Recovery struct {
	// Leases is how many open leases were settled.
	Leases int
	// Committed is the sum of the journaled commits they were settled for.
	Committed int64
}

// Recover settles every lease the journal left open, as a crashed instance
// would have: each granted lease hold is committed in the shared store for
// exactly the sum of its journaled sub-hold commits (each sub-hold counted
// once); a lease whose grant was not journaled is reserved again under its
// key (a replay if the store granted it) and committed for zero. Sub-holds
// that were active end: they can no longer be committed. Any instance may
// run Recover with a crashed instance's journal, but never while that
// instance runs. It is idempotent. New runs it on its own journal.
func Recover(ctx context.Context, shared budget.Store, journal Journal, opts *Options) (Recovery, error) {
	p, err := newPool(shared, journal, opts)
	if err != nil {
		return Recovery{}, err
	}
	return recoverJournal(ctx, p.ledger, journal, p.log)
}

type openLease struct {
	rec       Record // the KindLease record
	id        string
	committed int64
	subs      map[string]bool
	order     int
}

func recoverJournal(ctx context.Context, ledger *budget.Ledger, journal Journal, log *slog.Logger) (Recovery, error) {
	open := map[string]*openLease{}
	n := 0
	err := journal.Replay(ctx, func(r Record) error {
		switch r.Kind {
		case KindLease:
			open[r.LeaseKey] = &openLease{rec: r, subs: map[string]bool{}, order: n}
			n++
		case KindGranted:
			if o := open[r.LeaseKey]; o != nil {
				o.id = r.LeaseID
			}
		case KindCommit:
			if o := open[r.LeaseKey]; o != nil && !o.subs[r.Sub] {
				o.subs[r.Sub] = true
				o.committed += r.Amount
			}
		case KindSettled:
			delete(open, r.LeaseKey)
		}
		return nil
	})
	if err != nil {
		return Recovery{}, err
	}
	var rep Recovery
	var errs []error
	for key, o := range open {
		if o.rec.Currency != "" && o.rec.Currency != ledger.Currency() {
			errs = append(errs, errors.New("lease: recover: lease "+key+" is in "+o.rec.Currency))
			continue
		}
		id := o.id
		if id == "" {
			// The grant was never journaled, so nothing was granted from
			// it; the store may still hold it. Reserving again under the
			// key returns it (or takes it anew), and it is ended below.
			h, err := ledger.Reserve(ctx, o.rec.Scope, budget.Money{Amount: o.rec.Amount, Currency: ledger.Currency()}, key, nil)
			if errors.Is(err, budget.ErrCapExceeded) {
				_ = journal.Append(ctx, Record{Kind: KindSettled, LeaseKey: key})
				continue // nothing is held under key
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			id = h.ID
		}
		if err := settleLease(ctx, ledger, log, key, id, o.rec.Scope, o.committed); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Leases++
		rep.Committed += o.committed
		if err := journal.Append(ctx, Record{Kind: KindSettled, LeaseKey: key, Amount: o.committed}); err != nil {
			errs = append(errs, err)
		}
	}
	if rep.Leases > 0 {
		log.LogAttrs(ctx, slog.LevelInfo, "lease: recovered journal", slog.Int("leases", rep.Leases), slog.Int64("committed", rep.Committed))
	}
	return rep, errors.Join(errs...)
}

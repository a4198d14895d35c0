package catalogschema

import (
	"fmt"
	"math"
)

// Usage is what a budget check assumes about a service's use.
type Usage struct {
	// Months is the number of billing months looked at; 0 means 1.
	Months int
	// Units gives, per metered unit name, the most units used in a month.
	// A metered price whose unit is absent counts at its MaxAmount, or
	// makes the charge unbounded when it has none.
	Units map[string]int64
}

// Charge is the result of a worst-case price computation.
type Charge struct {
	Amount   int64
	Currency string
	// Bounded is false when some price has no upper bound (a metered price
	// without max_amount and without expected units, or a paid service
	// without machine-readable prices): Amount is then only a lower bound.
	Bounded bool
}

// MaxChargeWithin returns the most s can cost in currency over u.Months
// billing months starting with the first: one-time prices once, monthly
// prices every month, yearly prices once per started year, metered prices
// for u.Units (capped by MaxAmount) every month. Variable prices count at
// their MaxAmount.
//
// A service without prices costs 0: bounded if its pricing type is "free",
// unbounded otherwise. Prices in another currency fail with ErrCurrency,
// never converted (§2.6); sums past int64 fail with ErrOverflow.
func (s *Service) MaxChargeWithin(currency string, u Usage) (Charge, error) {
	ch := Charge{Currency: currency, Bounded: true}
	months := int64(u.Months)
	if months <= 0 {
		months = 1
	}
	if len(s.Prices) == 0 {
		ch.Bounded = s.Pricing.Type == PricingFree
		return ch, nil
	}
	var total int64
	for i, p := range s.Prices {
		if p.Currency != currency {
			return Charge{}, fmt.Errorf("%w: service %q price %d is in %s, not %s", ErrCurrency, s.ServiceID, i, p.Currency, currency)
		}
		if p.Amount < 0 || p.MaxAmount != nil && *p.MaxAmount < 0 {
			return Charge{}, fmt.Errorf("catalogschema: service %q price %d: negative amount", s.ServiceID, i)
		}
		hi := p.Amount
		if p.MaxAmount != nil && *p.MaxAmount > hi {
			hi = *p.MaxAmount
		}
		var cost int64
		var ok bool
		switch p.Basis {
		case BasisOneTime:
			cost, ok = hi, true
		case BasisMonthly:
			cost, ok = mul(hi, months)
		case BasisYearly:
			cost, ok = mul(hi, (months+11)/12)
		case BasisMetered:
			per := p.PerUnits
			if per <= 0 {
				per = 1
			}
			var monthly int64
			units, known := u.Units[p.Unit]
			switch {
			case known:
				if units < 0 {
					units = 0
				}
				blocks := units / per
				if units%per != 0 {
					blocks++
				}
				monthly, ok = mul(blocks, p.Amount)
				if p.MaxAmount != nil && (!ok || monthly > *p.MaxAmount) {
					monthly, ok = *p.MaxAmount, true
				}
				if !ok {
					return Charge{}, fmt.Errorf("%w: service %q price %d", ErrOverflow, s.ServiceID, i)
				}
			case p.MaxAmount != nil:
				monthly = *p.MaxAmount
			default:
				ch.Bounded = false
			}
			cost, ok = mul(monthly, months)
		default:
			// An unknown basis from a later minor version: nothing can be
			// said about its worst case.
			ch.Bounded = false
			cost, ok = 0, true
		}
		if !ok {
			return Charge{}, fmt.Errorf("%w: service %q price %d", ErrOverflow, s.ServiceID, i)
		}
		if total > math.MaxInt64-cost {
			return Charge{}, fmt.Errorf("%w: service %q", ErrOverflow, s.ServiceID)
		}
		total += cost
	}
	ch.Amount = total
	return ch, nil
}

// WorstCaseMonthly is MaxChargeWithin for the first month with no usage
// assumption: what provisioning s can cost before the first bill closes.
func (s *Service) WorstCaseMonthly(currency string) (Charge, error) {
	return s.MaxChargeWithin(currency, Usage{Months: 1})
}

// mul multiplies non-negative a and b, reporting overflow.
func mul(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	if a == 0 || b == 0 {
		return 0, true
	}
	if a > math.MaxInt64/b {
		return 0, false
	}
	return a * b, true
}

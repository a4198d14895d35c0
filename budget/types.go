package budget

import (
	"fmt"
	"strings"
	"time"
)

// Money is an amount in the minor unit of an ISO 4217 currency: 1299 USD is
// $12.99. Amounts are never floating point and never converted.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// USD returns cents of US dollars, a convenience for tests and examples.
func USD(cents int64) Money { return Money{Amount: cents, Currency: "USD"} }

// String formats m in major units with its currency code, as a person reads
// it: "12.99 USD", "1500 JPY", "1.250 KWD". The number of minor digits is the
// currency's ISO 4217 exponent (two for any code not listed as zero- or
// three-digit). It is for messages and logs, never for the wire.
func (m Money) String() string {
	a := m.Amount
	sign := ""
	if a < 0 {
		sign = "-"
		a = -a
	}
	switch MinorDigits(m.Currency) {
	case 0:
		return fmt.Sprintf("%s%d %s", sign, a, m.Currency)
	case 3:
		return fmt.Sprintf("%s%d.%03d %s", sign, a/1000, a%1000, m.Currency)
	default:
		return fmt.Sprintf("%s%d.%02d %s", sign, a/100, a%100, m.Currency)
	}
}

// MinorDigits returns the ISO 4217 exponent of currency: how many digits of
// an amount are minor units. It knows the zero- and three-digit currencies
// of the ISO 4217 list and answers 2 for every other code.
func MinorDigits(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
		"RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	}
	return 2
}

// validCurrency reports whether c looks like an ISO 4217 alphabetic code:
// three upper-case ASCII letters.
func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// Scope is the (project, provider) a reservation counts against. Every hold
// also counts against its project's project-wide caps.
type Scope struct {
	Project  string `json:"project"`
	Provider string `json:"provider"`
}

// String is "project/provider", the form used in logs and errors.
func (s Scope) String() string { return s.Project + "/" + s.Provider }

// HoldState is where a hold is in its life. See the package documentation
// for the state machine.
type HoldState string

// The hold states. Active is the only state that can change into more than
// one other; committed can only become reversed; the rest are final.
const (
	HoldActive    HoldState = "active"
	HoldCommitted HoldState = "committed"
	HoldReleased  HoldState = "released"
	HoldExpired   HoldState = "expired"
	HoldReversed  HoldState = "reversed"
)

// Ended reports whether s is no longer active.
func (s HoldState) Ended() bool { return s != HoldActive }

// Hold is a reservation of money under every applicable cap. While active and
// unexpired it counts its Amount; once committed it counts Committed; once
// released, expired or reversed it counts nothing.
type Hold struct {
	ID        string    `json:"id"`
	Key       string    `json:"idempotency_key"`
	Scope     Scope     `json:"scope"`
	Service   string    `json:"service,omitempty"`
	Memo      string    `json:"memo,omitempty"`
	Amount    Money     `json:"amount"`
	Committed Money     `json:"committed"`
	State     HoldState `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// Reason is the reason given when the hold was reversed.
	Reason string `json:"reason,omitempty"`
}

// At returns h as seen at now: an active hold whose expiry has passed is
// reported as expired at its ExpiresAt, exactly as a store marks it lazily.
func (h Hold) At(now time.Time) Hold {
	if h.State == HoldActive && !now.Before(h.ExpiresAt) {
		h.State = HoldExpired
		h.EndedAt = h.ExpiresAt
	}
	return h
}

// Period is the length of a cap's recurring window.
type Period string

// The supported periods. Windows are calendar-aligned in the Ledger's time
// zone; weeks are ISO 8601 weeks starting on Monday.
const (
	Week  Period = "week"
	Month Period = "month"
	Year  Period = "year"
)

// periods lists every period in the order counters are checked.
var periods = [...]Period{Week, Month, Year}

// Valid reports whether p is a supported period.
func (p Period) Valid() bool { return p == Week || p == Month || p == Year }

// Window names one instance of a period: "week:2026-W47", "month:2026-11",
// "year:2026". Windows sort chronologically as strings within a period.
type Window string

// Period returns the period a window belongs to.
func (w Window) Period() Period {
	p, _, _ := strings.Cut(string(w), ":")
	return Period(p)
}

// Counter names one spend counter: a scope in one window. Provider "" is the
// project-wide counter that sums every provider of the project.
type Counter struct {
	Project  string `json:"project"`
	Provider string `json:"provider,omitempty"`
	Window   Window `json:"window"`
}

// CapKey identifies a cap: a limit per window of Period on a project's
// provider, or on the whole project when Provider is "".
type CapKey struct {
	Project  string `json:"project"`
	Provider string `json:"provider,omitempty"`
	Period   Period `json:"period"`
}

// Cap returns the key of the cap that applies to c.
func (c Counter) Cap() CapKey {
	return CapKey{Project: c.Project, Provider: c.Provider, Period: c.Window.Period()}
}

// PrincipalKind says who acted.
type PrincipalKind string

// The principals. Only users and operators may change caps.
const (
	PrincipalUser     PrincipalKind = "user"
	PrincipalAgent    PrincipalKind = "agent"
	PrincipalOperator PrincipalKind = "operator"
)

// Principal is who performed an action, as authenticated by the caller.
type Principal struct {
	Kind PrincipalKind `json:"kind"`
	ID   string        `json:"id"`
}

// CapRecord is one cap change as stored in the cap history.
type CapRecord struct {
	Key   CapKey `json:"cap"`
	Limit Money  `json:"limit"`
	// Previous is the limit in force before this change: the stored cap, or
	// nil when none was stored (the default then applied).
	Previous *Money    `json:"previous,omitempty"`
	By       Principal `json:"by"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// CounterUsage is the state of one counter at an instant.
type CounterUsage struct {
	Counter Counter `json:"counter"`
	// Limit is the cap in force: the stored cap, else the default the caller
	// supplied; nil means no cap applies.
	Limit *Money `json:"limit,omitempty"`
	// Committed is the sum of committed holds.
	Committed int64 `json:"committed"`
	// Held is the sum of active holds that have not expired.
	Held int64 `json:"held"`
	// Arrears is the sum of usage reported after the fact.
	Arrears int64 `json:"arrears"`
}

// Spent is what the counter has definitively spent: committed plus arrears.
func (u CounterUsage) Spent() int64 { return u.Committed + u.Arrears }

// Used is what counts against the cap: spent plus active holds.
func (u CounterUsage) Used() int64 { return u.Committed + u.Arrears + u.Held }

// UsageEntry is one usage report billed in arrears, as stored.
type UsageEntry struct {
	Key        string    `json:"idempotency_key"`
	Scope      Scope     `json:"scope"`
	Service    string    `json:"service,omitempty"`
	Amount     Money     `json:"amount"`
	At         time.Time `json:"at"`
	RecordedAt time.Time `json:"recorded_at"`
}

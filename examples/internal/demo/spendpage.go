package demo

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/discovery"
	"github.com/agentprov/agentprov/internal/webform"
	"github.com/agentprov/agentprov/payment/issuer"
)

// SpendPath is where "orchestrator serve" serves the spend page.
const SpendPath = "/spend"

//go:embed templates/spend.html
var spendFS embed.FS

var spendTemplate = template.Must(template.New("spend.html").Funcs(template.FuncMap{"money": webform.Money}).ParseFS(spendFS, "templates/spend.html"))

// maxCharges bounds the recent charges the orchestrator remembers.
const maxCharges = 50

// chargeLog keeps the most recent final redemptions with their signed
// receipts. It is safe for concurrent use.
type chargeLog struct {
	mu   sync.Mutex
	recs []issuer.Redemption // newest last
}

func (l *chargeLog) record(_ context.Context, r issuer.Redemption) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = slices.DeleteFunc(l.recs, func(x issuer.Redemption) bool { return x.HoldID == r.HoldID })
	l.recs = append(l.recs, r)
	if len(l.recs) > maxCharges {
		l.recs = l.recs[len(l.recs)-maxCharges:]
	}
}

// Charges returns the project's most recent final charges, newest first.
func (o *Orchestrator) Charges(project string) []issuer.Redemption {
	o.charges.mu.Lock()
	defer o.charges.mu.Unlock()
	var out []issuer.Redemption
	for i := len(o.charges.recs) - 1; i >= 0; i-- {
		if r := o.charges.recs[i]; r.Project == project {
			out = append(out, r)
		}
	}
	return out
}

// PersonFunc reports whether r comes from the person who owns the
// orchestrator (their browser session), not from an agent.
type PersonFunc func(r *http.Request) bool

// SpendPage is the orchestrator's spend page for one project: per
// provider and for the project, what is spent, held, the monthly cap and
// what remains, the alert thresholds the person chose, and recent charges
// with their signed receipts. Changing a cap or thresholds needs the
// person (PersonFunc) and, for caps, a second confirming step; a request
// carrying an Authorization header (an agent's token) is always refused.
// Every form carries a CSRF token and passes Go's cross-origin check. It
// is safe for concurrent use.
type SpendPage struct {
	o       *Orchestrator
	project string
	person  PersonFunc
	csrf    *webform.CSRF
	key     []byte
	log     *slog.Logger

	mu         sync.Mutex
	thresholds map[string][]int // by provider ("" = project), percent
}

// NewSpendPage returns the spend page of project. person is required.
func NewSpendPage(o *Orchestrator, project string, person PersonFunc, log *slog.Logger) (*SpendPage, error) {
	if o == nil || project == "" || person == nil {
		return nil, errors.New("demo: spend page: orchestrator, project and person check are required")
	}
	if log == nil {
		log = slog.Default()
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &SpendPage{o: o, project: project, person: person, csrf: webform.NewCSRF("orchestrator_spend_csrf", nil),
		key: key, log: log, thresholds: map[string][]int{}}, nil
}

// SpendRow is one line of the spend page, in minor units.
type SpendRow struct {
	Provider                     string // "" for the whole project
	Currency                     string
	Spent, Held                  int64
	Cap, Remaining               *int64
	Percent                      int // used (spent + held) in percent of the cap
	Thresholds, Crossed          []int
	ThresholdsText, CapInputText string
}

type spendData struct {
	Project, CSRF, Action, Message string
	Error, Person                  bool
	Style                          template.CSS
	Rows                           []SpendRow
	Charges                        []issuer.Redemption
	Confirm                        *capConfirm
}

type capConfirm struct {
	Provider, Scope, Limit, Old, Token string
}

// Rows computes the page's figures for this month.
func (s *SpendPage) Rows(ctx context.Context) ([]SpendRow, error) {
	cur := s.o.Ledger.Currency()
	var rows []SpendRow
	var project *SpendRow
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.o.cfg.Trust {
		u, err := s.o.Ledger.Usage(ctx, budget.Scope{Project: s.project, Provider: t.ID})
		if err != nil {
			return nil, err
		}
		for _, c := range u.Counters {
			if c.Counter.Window.Period() != budget.Month {
				continue
			}
			switch c.Counter.Provider {
			case t.ID:
				rows = append(rows, s.row(t.ID, cur, c))
			case "":
				if project == nil {
					r := s.row("", cur, c)
					project = &r
				}
			}
		}
	}
	slices.SortFunc(rows, func(a, b SpendRow) int { return strings.Compare(a.Provider, b.Provider) })
	if project != nil {
		rows = append(rows, *project)
	}
	return rows, nil
}

func (s *SpendPage) row(provider, cur string, c budget.CounterUsage) SpendRow {
	r := SpendRow{Provider: provider, Currency: cur, Spent: c.Spent(), Held: c.Held, Thresholds: s.thresholds[provider]}
	if r.Thresholds == nil {
		r.Thresholds = []int{50, 80, 100}
	}
	if c.Limit != nil {
		lim, rem := c.Limit.Amount, max(0, c.Limit.Amount-c.Used())
		r.Cap, r.Remaining = &lim, &rem
		if lim > 0 {
			r.Percent = int(c.Used() * 100 / lim)
		}
		for _, p := range r.Thresholds {
			if r.Percent >= p {
				r.Crossed = append(r.Crossed, p)
			}
		}
		r.CapInputText = fmt.Sprintf("%d.%02d", lim/100, lim%100)
	}
	ts := make([]string, len(r.Thresholds))
	for i, p := range r.Thresholds {
		ts[i] = strconv.Itoa(p)
	}
	r.ThresholdsText = strings.Join(ts, ", ")
	return r
}

// confirmToken binds a cap confirmation to the browser (its CSRF cookie),
// the scope and the amount, for ten minutes.
func (s *SpendPage) confirmToken(r *http.Request, provider string, cents int64, at int64) string {
	ck, _ := r.Cookie("orchestrator_spend_csrf")
	v := ""
	if ck != nil {
		v = ck.Value
	}
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "cap\x00%s\x00%s\x00%d\x00%d", v, provider, cents, at)
	return strconv.FormatInt(at, 10) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *SpendPage) checkConfirm(r *http.Request, provider string, cents int64, tok string) bool {
	ts, _, ok := strings.Cut(tok, ".")
	at, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || time.Since(time.Unix(at, 0)) > 10*time.Minute {
		return false
	}
	return hmac.Equal([]byte(tok), []byte(s.confirmToken(r, provider, cents, at)))
}

// ServeHTTP serves the page (GET) and its forms (POST).
func (s *SpendPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	webform.SetHeaders(w)
	data := spendData{Project: s.project, Action: r.URL.Path, Style: template.CSS(webform.Style),
		Person: s.person(r) && r.Header.Get("Authorization") == ""}
	status := http.StatusOK
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		status = s.post(w, r, &data)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rows, err := s.Rows(r.Context())
	if err != nil {
		s.log.Warn("demo: spend page", "err", err)
		data.Message, data.Error, status = "The budget store is unavailable; try again.", true, http.StatusServiceUnavailable
	}
	data.Rows = rows
	data.Charges = s.o.Charges(s.project)
	data.CSRF = s.csrf.Token(w, r)
	w.WriteHeader(status)
	if err := spendTemplate.Execute(w, data); err != nil {
		s.log.Warn("demo: spend page: render", "err", err)
	}
}

func (s *SpendPage) post(w http.ResponseWriter, r *http.Request, data *spendData) int {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		data.Message, data.Error = "The form could not be read.", true
		return http.StatusBadRequest
	}
	if err := s.csrf.Check(r); err != nil {
		data.Message, data.Error = "This form expired or did not come from this page. Reload the page and try again.", true
		return http.StatusForbidden
	}
	if !data.Person {
		data.Message, data.Error = "Only the account owner, signed in on this page, can change caps and alerts; an agent cannot.", true
		return http.StatusForbidden
	}
	provider := r.PostForm.Get("provider")
	if provider != "" && !slices.ContainsFunc(s.o.cfg.Trust, func(t discovery.TrustedProvider) bool { return t.ID == provider }) {
		data.Message, data.Error = "Unknown provider.", true
		return http.StatusBadRequest
	}
	scope := "the whole project"
	if provider != "" {
		scope = provider
	}
	switch r.PostForm.Get("action") {
	case "cap":
		cents, err := parseMajor(r.PostForm.Get("limit"))
		if err != nil {
			data.Message, data.Error = err.Error(), true
			return http.StatusBadRequest
		}
		// Step one: show what would change and ask again.
		old := "none"
		if rows, err := s.Rows(r.Context()); err == nil {
			for _, row := range rows {
				if row.Provider == provider && row.Cap != nil {
					old = webform.Money(*row.Cap, row.Currency)
				}
			}
		}
		data.Confirm = &capConfirm{Provider: provider, Scope: scope, Limit: webform.Money(cents, s.o.Ledger.Currency()),
			Old: old, Token: s.confirmToken(r, provider, cents, time.Now().Unix())}
		return http.StatusOK
	case "cap-confirm":
		cents, err := parseMajor(r.PostForm.Get("limit"))
		if err != nil || !s.checkConfirm(r, provider, cents, r.PostForm.Get("confirm")) {
			data.Message, data.Error = "The confirmation expired or does not match; start again.", true
			return http.StatusBadRequest
		}
		rec, err := s.o.Ledger.SetCap(r.Context(), budget.CapChange{Project: s.project, Provider: provider,
			Limit: budget.Money{Amount: cents, Currency: s.o.Ledger.Currency()},
			By:    budget.Principal{Kind: budget.PrincipalUser, ID: s.o.cfg.User.ID}, Reason: "spend page"})
		if err != nil {
			data.Message, data.Error = "The cap was not changed: "+err.Error(), true
			return http.StatusBadRequest
		}
		data.Message = fmt.Sprintf("Monthly cap of %s set to %s.", scope, webform.Money(rec.Limit.Amount, rec.Limit.Currency))
	case "alerts":
		ps, err := parseThresholds(r.PostForm.Get("thresholds"))
		if err != nil {
			data.Message, data.Error = err.Error(), true
			return http.StatusBadRequest
		}
		s.mu.Lock()
		s.thresholds[provider] = ps
		s.mu.Unlock()
		data.Message = "Alert thresholds of " + scope + " saved."
	default:
		data.Message, data.Error = "Unknown action.", true
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// parseMajor reads "50", "$50.5" or "50.25" (major units) as minor units.
func parseMajor(s string) (int64, error) {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "$"))
	whole, frac, _ := strings.Cut(s, ".")
	bad := fmt.Errorf("%q is not an amount such as 50 or 50.25", s)
	if whole == "" || len(frac) > 2 || strings.ContainsAny(whole, "+-") {
		return 0, bad
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > 1_000_000_000 {
		return 0, bad
	}
	frac += strings.Repeat("0", 2-len(frac))
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || f < 0 {
		return 0, bad
	}
	return w*100 + f, nil
}

// parseThresholds reads "50, 80, 100" as ascending percentages 1–1000.
func parseThresholds(s string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '%' }) {
		p, err := strconv.Atoi(f)
		if err != nil || p < 1 || p > 1000 {
			return nil, fmt.Errorf("%q is not a percentage between 1 and 1000", f)
		}
		out = append(out, p)
	}
	if len(out) == 0 || len(out) > 10 {
		return nil, errors.New("give between 1 and 10 percentages, such as 50, 80, 100")
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// SpendSessions is the demo's PersonFunc: "orchestrator serve" prints a
// one-time sign-in link on its terminal (where only the person who started
// it reads it); opening it sets a session cookie. It is safe for
// concurrent use.
type SpendSessions struct {
	mu     sync.Mutex
	ticket string
	key    []byte
}

// NewSpendSessions returns sessions with a fresh sign-in ticket.
func NewSpendSessions() *SpendSessions {
	s := &SpendSessions{key: make([]byte, 32)}
	_, _ = rand.Read(s.key)
	s.ticket = newTicket()
	return s
}

func newTicket() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// SignInPath returns the path of the one-time sign-in link.
func (s *SpendSessions) SignInPath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SpendPath + "/signin?ticket=" + s.ticket
}

const spendSessionCookie = "orchestrator_spend_session"

func (s *SpendSessions) value() string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("spend-session"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Person implements PersonFunc.
func (s *SpendSessions) Person(r *http.Request) bool {
	c, err := r.Cookie(spendSessionCookie)
	return err == nil && hmac.Equal([]byte(c.Value), []byte(s.value()))
}

// SignInHandler serves the sign-in link: a valid ticket, used once, sets
// the session cookie and redirects to the spend page.
func (s *SpendSessions) SignInHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		ok := s.ticket != "" && hmac.Equal([]byte(r.URL.Query().Get("ticket")), []byte(s.ticket))
		if ok {
			s.ticket = newTicket() // one use
		}
		s.mu.Unlock()
		if !ok {
			http.Error(w, "this sign-in link was used or is wrong; restart \"orchestrator serve\" for a new one", http.StatusForbidden)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: spendSessionCookie, Value: s.value(), Path: SpendPath, HttpOnly: true,
			Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, SpendPath, http.StatusSeeOther)
	})
}

// MountSpendPage mounts the spend page of project and its sign-in link on
// mux and returns the sign-in path to show the person.
func (o *Orchestrator) MountSpendPage(mux *http.ServeMux, project string) (signIn string, err error) {
	sessions := NewSpendSessions()
	page, err := NewSpendPage(o, project, sessions.Person, o.log)
	if err != nil {
		return "", err
	}
	mux.Handle(SpendPath, page)
	mux.Handle(SpendPath+"/signin", sessions.SignInHandler())
	return sessions.SignInPath(), nil
}

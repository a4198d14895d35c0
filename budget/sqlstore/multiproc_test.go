package sqlstore_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// The multi-process test: several OS processes, each a Ledger over its own
// pool on one PostgreSQL database (as several orchestrator instances would
// be), hammer one hot scope. Each child logs every outcome it saw as JSON
// lines; the parent then checks the database against the union of the logs.

const (
	envChild    = "AGENTPROV_SQLSTORE_CHILD" // child index
	envChildDSN = "AGENTPROV_SQLSTORE_CHILD_DSN"
	envChildRun = "AGENTPROV_SQLSTORE_CHILD_MODE" // "work" or "crash"
	envChildDB  = "AGENTPROV_SQLSTORE_CHILD_DIALECT"

	mpWorkers    = 64 // concurrent reservers per process (PostgreSQL)
	mpSQLite     = 16 // on SQLite, whose busy handler is not fair to waiters
	mpIterations = 6  // reservations per reserver
	mpPool       = 8  // connections per process: the server is shared
)

var (
	mpScope = budget.Scope{Project: "hot", Provider: "acme"}
	mpStart = time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	mpCap   = int64(10000) // the default $100 per provider per month
)

// event is one line of a child's log.
type event struct {
	Child  int    `json:"child"`
	Op     string `json:"op"` // start, reserve, replay, commit, release
	Key    string `json:"key,omitempty"`
	Hold   string `json:"hold,omitempty"`
	Amount int64  `json:"amount,omitempty"`
	Code   string `json:"code,omitempty"` // "" on success
}

func mpLedger(t testing.TB, db *sql.DB, d sqlstore.Dialect, now time.Time) *budget.Ledger {
	t.Helper()
	s, err := sqlstore.New(context.Background(), db, d, nil)
	if err != nil {
		t.Fatalf("sqlstore.New: %v", err)
	}
	l, err := budget.NewLedger(s, &budget.LedgerOptions{Now: func() time.Time { return now }, DefaultTTL: time.Hour})
	if err != nil {
		t.Fatalf("NewLedger: %v", err)
	}
	return l
}

// TestHelperProcess is the child. It does nothing unless started by
// TestPostgresMultiProcess or TestSQLiteMultiProcess.
func TestHelperProcess(t *testing.T) {
	idx, err := strconv.Atoi(os.Getenv(envChild))
	if err != nil {
		t.Skip("helper process for the multi-process tests")
	}
	d := sqlstore.Postgres
	open := openPostgres(os.Getenv(envChildDSN))
	if os.Getenv(envChildDB) == sqlstore.SQLite.String() {
		d, open = sqlstore.SQLite, openSQLite(os.Getenv(envChildDSN))
	}
	db, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if d == sqlstore.Postgres {
		db.SetMaxOpenConns(mpPool)
	}
	// Every instance reads the same fixed clock: nothing expires during
	// the run, so the logs alone determine every final state.
	l := mpLedger(t, db, d, mpStart)
	crash := os.Getenv(envChildRun) == "crash"

	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	emit := func(e event) {
		e.Child = idx
		b, _ := json.Marshal(e)
		mu.Lock()
		out.Write(append(b, '\n'))
		out.Flush() // unbuffered lines: a killed child loses nothing it logged
		mu.Unlock()
	}
	code := func(err error) string {
		if err == nil {
			return ""
		}
		c, _ := budget.Code(err)
		return c
	}
	ctx := context.Background()
	// retry repeats a call that failed closed (store_unavailable: on SQLite
	// a busy timeout when many processes queue for the write lock), as the
	// protocol asks of clients: with the same key, which makes it safe.
	retry := func(f func() error) error {
		for attempt := 0; ; attempt++ {
			err := f()
			if !errors.Is(err, budget.ErrStore) || attempt == 20 || crash {
				return err
			}
			time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	workers, iterations := mpWorkers, mpIterations
	if d == sqlstore.SQLite {
		workers, iterations = mpSQLite, mpIterations*mpWorkers/mpSQLite // the same demand
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(idx), uint64(w)))
			for i := 0; crash || i < iterations; i++ {
				key := fmt.Sprintf("c%d-w%d-i%d", idx, w, i)
				amount := 1 + rng.Int64N(60)
				if crash {
					amount = 1 + rng.Int64N(10)
				}
				if crash {
					// Logged before the call: the parent may find a hold
					// for this key that the child never saw granted.
					emit(event{Op: "start", Key: key, Amount: amount})
				}
				var h budget.Hold
				err := retry(func() (err error) {
					h, err = l.Reserve(ctx, mpScope, budget.USD(amount), key, nil)
					return err
				})
				emit(event{Op: "reserve", Key: key, Hold: h.ID, Amount: amount, Code: code(err)})
				if err != nil || crash {
					continue // a crashing instance never finishes its holds
				}
				if rng.IntN(8) == 0 {
					var r budget.Hold
					err := retry(func() (err error) {
						r, err = l.Reserve(ctx, mpScope, budget.USD(amount), key, nil)
						return err
					})
					emit(event{Op: "replay", Key: key, Hold: r.ID, Amount: amount, Code: code(err)})
				}
				switch p := rng.IntN(100); {
				case p < 60:
					actual := rng.Int64N(amount + 1)
					err := retry(func() error { _, err := l.Commit(ctx, h.ID, budget.USD(actual)); return err })
					emit(event{Op: "commit", Hold: h.ID, Amount: actual, Code: code(err)})
				case p < 85:
					err := retry(func() error { _, err := l.Release(ctx, h.ID); return err })
					emit(event{Op: "release", Hold: h.ID, Code: code(err)})
				default:
					// Left active: an instance that stopped caring; it expires.
				}
			}
		}()
	}
	wg.Wait()
}

// child is a running helper process and the events it logged.
type child struct {
	cmd    *exec.Cmd
	events []event
	other  []string      // lines that are not events: shown if the child fails
	lines  chan struct{} // one tick per logged line
	done   chan error
}

func startChild(t *testing.T, d sqlstore.Dialect, idx int, dsn, mode string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"="+strconv.Itoa(idx), envChildDSN+"="+dsn, envChildRun+"="+mode, envChildDB+"="+d.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan struct{}, 1<<16), done: make(chan error, 1)}
	go func() {
		c.done <- c.read(stdout)
	}()
	return c
}

func (c *child) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			c.other = append(c.other, string(line)) // the test framework's own output
			continue
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("bad log line %q: %v", line, err)
		}
		c.events = append(c.events, e)
		select {
		case c.lines <- struct{}{}:
		default:
		}
	}
	return sc.Err()
}

func TestPostgresMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	dsn := sqltest.PostgresSchema(t)
	testMultiProcess(t, sqlstore.Postgres, dsn, sqltest.OpenPostgres(t, dsn))
}

// TestSQLiteMultiProcess: the same on one SQLite file, where the processes
// take turns on the database's write lock (BEGIN IMMEDIATE, busy timeout).
func TestSQLiteMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	path := sqltest.SQLitePath(t)
	testMultiProcess(t, sqlstore.SQLite, path, sqltest.SQLite(t, path))
}

func testMultiProcess(t *testing.T, d sqlstore.Dialect, dsn string, admin *sql.DB) {
	mpLedger(t, admin, d, mpStart) // create the tables once, before the crowd

	const workers = 4
	children := make([]*child, 0, workers+1)
	for i := 0; i < workers; i++ {
		children = append(children, startChild(t, d, i, dsn, "work"))
	}
	// A fifth instance reserves and is killed mid-flight (SIGKILL: no
	// deferred code, statements cut off wherever they are).
	crasher := startChild(t, d, workers, dsn, "crash")
	children = append(children, crasher)
	for n := 0; n < 200; n++ {
		select {
		case <-crasher.lines:
		case <-time.After(2 * time.Minute):
			t.Fatal("crashing child logged nothing")
		}
	}
	if err := crasher.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for i, c := range children {
		if err := <-c.done; err != nil {
			t.Fatalf("child %d log: %v", i, err)
		}
		err := c.cmd.Wait()
		if c != crasher && err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, strings.Join(c.other, "\n"))
		}
	}

	// What the children saw.
	type want struct {
		key       string
		amount    int64
		state     budget.HoldState
		committed int64
	}
	holds := map[string]*want{} // by hold id
	refused := map[string]bool{}
	maybe := map[string]int64{} // crasher keys with no logged outcome
	var loggedCommitted, loggedHeld int64
	var reserves, grants int
	for _, c := range children {
		for _, e := range c.events {
			switch e.Op {
			case "start":
				maybe[e.Key] = e.Amount
			case "reserve":
				reserves++
				if e.Child == workers && e.Code == budget.ErrStore.Code {
					continue // the crasher does not retry: the outcome is unknown, as if cut off
				}
				delete(maybe, e.Key)
				switch e.Code {
				case "":
					grants++
					holds[e.Hold] = &want{key: e.Key, amount: e.Amount, state: budget.HoldActive}
				case budget.ErrCapExceeded.Code:
					refused[e.Key] = true
				default:
					t.Errorf("child %d: reserve %s failed: %s", e.Child, e.Key, e.Code)
				}
			case "replay":
				if w := holds[e.Hold]; e.Code != "" || w == nil || w.key != e.Key {
					t.Errorf("child %d: replay of %s = hold %s, %s", e.Child, e.Key, e.Hold, e.Code)
				}
			case "commit", "release":
				w := holds[e.Hold]
				if e.Code != "" || w == nil || w.state != budget.HoldActive {
					t.Errorf("child %d: %s of %s: %q (hold %+v)", e.Child, e.Op, e.Hold, e.Code, w)
					continue
				}
				if e.Op == "commit" {
					w.state, w.committed = budget.HoldCommitted, e.Amount
					loggedCommitted += e.Amount
				} else {
					w.state = budget.HoldReleased
				}
			}
		}
	}
	for _, w := range holds {
		if w.state == budget.HoldActive {
			loggedHeld += w.amount
		}
	}
	t.Logf("%d processes: %d reservations, %d granted, %d refused, %d cut off by the kill; committed %d, held %d of cap %d",
		len(children), reserves, grants, len(refused), len(maybe), loggedCommitted, loggedHeld, mpCap)
	if len(refused) == 0 || grants == 0 {
		t.Fatalf("the cap never bit or never granted: the test proves nothing")
	}

	// What the database holds.
	rows, err := admin.Query(`SELECT id, idem_key, amount, committed, state FROM agentprov_budget_holds`)
	if err != nil {
		t.Fatal(err)
	}
	var dbCommitted, dbHeld, unlogged int64
	seen := map[string]bool{}
	for rows.Next() {
		var id, key, state string
		var amount, committed int64
		if err := rows.Scan(&id, &key, &amount, &committed, &state); err != nil {
			t.Fatal(err)
		}
		seen[id] = true
		switch budget.HoldState(state) {
		case budget.HoldCommitted:
			dbCommitted += committed
		case budget.HoldActive:
			dbHeld += amount
		}
		w := holds[id]
		if w == nil {
			// Only a reservation the kill cut off may be unknown to the
			// logs, and it stays active until it expires.
			if a, ok := maybe[key]; !ok || a != amount || state != string(budget.HoldActive) {
				t.Errorf("hold %s (key %s, %d, %s) is in no log", id, key, amount, state)
			}
			unlogged += amount
			continue
		}
		if w.key != key || w.amount != amount || string(w.state) != state || w.committed != committed {
			t.Errorf("hold %s: database has key %s amount %d %s committed %d; logs say %+v", id, key, amount, state, committed, *w)
		}
		if refused[key] {
			t.Errorf("refused key %s has hold %s", key, id)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id := range holds {
		if !seen[id] {
			t.Errorf("granted hold %s is not in the database", id)
		}
	}
	if dbCommitted != loggedCommitted || dbHeld != loggedHeld+unlogged {
		t.Errorf("database sums committed %d held %d; logs say %d and %d (+%d cut off)", dbCommitted, dbHeld, loggedCommitted, loggedHeld, unlogged)
	}

	// Every counter of the scope agrees with the holds, and the cap held.
	l := mpLedger(t, admin, d, mpStart)
	u, err := l.Usage(t.Context(), mpScope)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range u.Counters {
		if c.Committed != dbCommitted || c.Held != dbHeld || c.Arrears != 0 {
			t.Errorf("counter %+v: want committed %d held %d", c.Counter, dbCommitted, dbHeld)
		}
	}
	if dbCommitted+dbHeld > mpCap {
		t.Fatalf("committed %d + held %d exceeds the cap %d", dbCommitted, dbHeld, mpCap)
	}

	// Later, every hold left active (the crashed instance's too) has
	// expired and stopped counting; nothing else changed.
	later := mpLedger(t, admin, d, mpStart.Add(2*time.Hour))
	u, err = later.Usage(t.Context(), mpScope)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range u.Counters {
		if c.Committed != dbCommitted || c.Held != 0 {
			t.Errorf("after expiry, counter %+v: want committed %d held 0", c, dbCommitted)
		}
	}
	var active int
	if err := admin.QueryRow(`SELECT count(*) FROM agentprov_budget_holds WHERE state = 'active'`).Scan(&active); err != nil {
		t.Fatal(err)
	}
	if active != 0 {
		t.Errorf("%d holds still active after expiry", active)
	}
	if room := mpCap - dbCommitted; room > 0 {
		if _, err := later.Reserve(t.Context(), mpScope, budget.USD(room), "after", nil); err != nil {
			t.Errorf("reserving the remaining %d after expiry: %v", room, err)
		}
	}
}

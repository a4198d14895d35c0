package lease_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentprov/agentprov/budget"
	"github.com/agentprov/agentprov/budget/lease"
	"github.com/agentprov/agentprov/budget/sqlstore"
	"github.com/agentprov/agentprov/internal/sqltest"
)

// The kill test: several OS processes, each a lease.Pool over sqlstore on
// one PostgreSQL schema with its own FileJournal, spend one hot cap until it
// is exhausted while the parent SIGKILLs them at random moments and
// restarts them on the same journal. Each child logs every outcome as a JSON
// line; the parent checks the database and the journals against the logs.

const (
	envKillChild   = "AGENTPROV_LEASE_CHILD" // child index
	envKillLife    = "AGENTPROV_LEASE_CHILD_LIFE"
	envKillDSN     = "AGENTPROV_LEASE_CHILD_DSN"
	envKillJournal = "AGENTPROV_LEASE_CHILD_JOURNAL"
	envKillPace    = "AGENTPROV_LEASE_CHILD_PACE" // max pause between reservations, in ms

	killChildren = 4
	killWorkers  = 32 // goroutines per child
	killCap      = int64(20000)
	killSlice    = 400
	killMaxCall  = 50
	killConns    = 4 // connections per child: the server is shared
)

var killScope = budget.Scope{Project: "hot", Provider: "acme"}

func killOptions(instance string) *lease.Options {
	return &lease.Options{
		Ledger:   &budget.LedgerOptions{DefaultProviderCap: budget.USD(killCap)},
		Slice:    killSlice,
		Instance: instance,
		// The parent audits every journal record of every life.
		CompactAfter: -1,
	}
}

// killEvent is one line of a child's log.
type killEvent struct {
	Child  int    `json:"child"`
	Life   int    `json:"life"`
	Op     string `json:"op"` // open, reserve, commit, release, closed
	Key    string `json:"key,omitempty"`
	Hold   string `json:"hold,omitempty"`
	Amount int64  `json:"amount,omitempty"`
	Code   string `json:"code,omitempty"` // "" on success
	At     int64  `json:"at"`             // Unix milliseconds
}

// TestLeaseHelperProcess is the child. It does nothing unless started by
// TestPostgresKill. It serves until its stdin closes, then finishes the
// holds it has, closes its Pool and logs "closed".
func TestLeaseHelperProcess(t *testing.T) {
	idx, err := strconv.Atoi(os.Getenv(envKillChild))
	if err != nil {
		t.Skip("helper process for TestPostgresKill")
	}
	life, _ := strconv.Atoi(os.Getenv(envKillLife))
	pace, _ := strconv.Atoi(os.Getenv(envKillPace))
	ctx := context.Background()
	db := sqltest.OpenPostgres(t, os.Getenv(envKillDSN))
	db.SetMaxOpenConns(killConns)
	store, err := sqlstore.New(ctx, db, sqlstore.Postgres, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := lease.OpenFileJournal(os.Getenv(envKillJournal))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()

	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	emit := func(e killEvent) {
		e.Child, e.Life, e.At = idx, life, time.Now().UnixMilli()
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
		if c == "" {
			return err.Error()
		}
		return c
	}

	// New recovers what the previous life left in the journal before it
	// serves anything.
	p, err := lease.New(ctx, store, j, killOptions(fmt.Sprintf("c%d", idx)))
	if err != nil {
		t.Fatal(err)
	}
	emit(killEvent{Op: "open"})
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	pause := func(rng *rand.Rand, max int) bool {
		select {
		case <-stop:
			return false
		case <-time.After(time.Duration(rng.IntN(max+1)) * time.Millisecond):
			return true
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < killWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(idx)<<32|uint64(life), uint64(w)))
			for i := 0; pause(rng, pace); i++ {
				key := fmt.Sprintf("c%d-l%d-w%d-i%d", idx, life, w, i)
				amount := 1 + rng.Int64N(killMaxCall)
				h, err := p.Reserve(ctx, killScope, budget.USD(amount), key)
				emit(killEvent{Op: "reserve", Key: key, Hold: h.ID, Amount: amount, Code: code(err)})
				if err != nil {
					if !pause(rng, 20) {
						return
					}
					continue
				}
				if rng.IntN(5) == 0 {
					_, err := p.Release(ctx, h.ID)
					emit(killEvent{Op: "release", Hold: h.ID, Code: code(err)})
					continue
				}
				actual := 1 + rng.Int64N(amount)
				_, err = p.Commit(ctx, h.ID, budget.USD(actual))
				emit(killEvent{Op: "commit", Hold: h.ID, Amount: actual, Code: code(err)})
			}
		}()
	}
	wg.Wait()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	emit(killEvent{Op: "closed"})
}

// killChild is one life of a helper process and the events it logged.
type killChild struct {
	idx, life int
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	events    []killEvent
	other     []string
	done      chan error
}

func startKillChild(t *testing.T, idx, life int, dsn, journal string, pace int) *killChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeaseHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envKillChild+"="+strconv.Itoa(idx), envKillLife+"="+strconv.Itoa(life),
		envKillDSN+"="+dsn, envKillJournal+"="+journal, envKillPace+"="+strconv.Itoa(pace))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &killChild{idx: idx, life: life, cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Bytes()
			if len(line) == 0 || line[0] != '{' {
				c.other = append(c.other, string(line))
				continue
			}
			var e killEvent
			if err := json.Unmarshal(line, &e); err != nil {
				c.done <- fmt.Errorf("bad log line %q: %v", line, err)
				return
			}
			c.events = append(c.events, e)
		}
		c.done <- sc.Err()
	}()
	return c
}

// wait reaps the child; a clean exit is required unless it was killed.
func (c *killChild) wait(t *testing.T, killed bool) {
	t.Helper()
	if err := <-c.done; err != nil {
		t.Fatalf("child %d life %d log: %v", c.idx, c.life, err)
	}
	if err := c.cmd.Wait(); err != nil && !killed {
		t.Fatalf("child %d life %d: %v\n%s", c.idx, c.life, err, strings.Join(c.other, "\n"))
	}
}

// TestPostgresKill is the multi-process hot-cap test with leases under
// kill -9: 4 processes × 32 goroutines reserve and commit on one scope
// whose cap runs out during the run; the parent SIGKILLs a random process
// at random moments and restarts it on its journal. In the end the store
// has committed at most the cap, at least every commit a process
// reported (exactly the journaled commits of every lease), and holds
// nothing.
func TestPostgresKill(t *testing.T) {
	dsn := sqltest.PostgresSchema(t) // skips unless AGENTPROV_TEST_POSTGRES is set
	admin := sqltest.OpenPostgres(t, dsn)
	ctx := t.Context()
	store, err := sqlstore.New(ctx, admin, sqlstore.Postgres, nil) // the tables, once
	if err != nil {
		t.Fatal(err)
	}
	kills, phase, pace := 8, 10*time.Second, 800
	if testing.Short() {
		kills, phase, pace = 6, 5*time.Second, 400
	}
	start := time.Now()
	dir := t.TempDir()
	journal := func(i int) string { return filepath.Join(dir, fmt.Sprintf("journal-%d", i)) }
	var lives []*killChild
	cur := make([]*killChild, killChildren)
	for i := range cur {
		cur[i] = startKillChild(t, i, 0, dsn, journal(i), pace)
		lives = append(lives, cur[i])
	}
	killed := map[[2]int]bool{} // child, life
	var killedAt []time.Time
	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 0))
	gap := phase / time.Duration(kills)
	for k := 0; k < kills; k++ {
		time.Sleep(gap/2 + time.Duration(rng.Int64N(int64(gap))))
		i := rng.IntN(killChildren)
		c := cur[i]
		if err := c.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		c.wait(t, true)
		killed[[2]int{c.idx, c.life}] = true
		killedAt = append(killedAt, time.Now())
		cur[i] = startKillChild(t, i, c.life+1, dsn, journal(i), pace)
		lives = append(lives, cur[i])
	}
	time.Sleep(gap) // the last restarted child serves a while
	for _, c := range cur {
		c.stdin.Close()
	}
	for _, c := range cur {
		c.wait(t, false)
		if n := len(c.events); n == 0 || c.events[n-1].Op != "closed" {
			t.Fatalf("child %d life %d did not close cleanly", c.idx, c.life)
		}
	}
	elapsed := time.Since(start)

	// Every journal has nothing left to recover; read what they recorded.
	jcommits := map[string][]int64{} // sub-hold id → journaled commit amounts
	leaseSum := map[string]int64{}   // lease key → sum of its journaled commits
	granted := map[string]bool{}     // lease keys the store granted
	for i := 0; i < killChildren; i++ {
		j, err := lease.OpenFileJournal(journal(i))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := lease.Recover(ctx, store, j, killOptions(fmt.Sprintf("c%d", i)))
		if err != nil || rep.Leases != 0 {
			t.Errorf("journal %d: Recover after clean close = %+v, %v; want nothing to do", i, rep, err)
		}
		err = j.Replay(ctx, func(r lease.Record) error {
			switch r.Kind {
			case lease.KindCommit:
				jcommits[r.Sub] = append(jcommits[r.Sub], r.Amount)
				leaseSum[r.LeaseKey] += r.Amount
			case lease.KindGranted:
				granted[r.LeaseKey] = true
			}
			return nil
		})
		j.Close()
		if err != nil {
			t.Fatal(err)
		}
	}

	// What the children saw.
	type want struct {
		key       string
		amount    int64
		committed int64
		reported  bool // the commit was reported
		life      [2]int
	}
	holds := map[string]*want{}
	var reported int64
	var reserves, grants, refused, commits int
	var firstRefusal time.Time
	for _, c := range lives {
		for _, e := range c.events {
			switch e.Op {
			case "reserve":
				reserves++
				switch e.Code {
				case "":
					grants++
					if holds[e.Hold] != nil {
						t.Errorf("hold %s granted twice", e.Hold)
					}
					holds[e.Hold] = &want{key: e.Key, amount: e.Amount, life: [2]int{e.Child, e.Life}}
				case budget.ErrCapExceeded.Code:
					refused++
					if t := time.UnixMilli(e.At); firstRefusal.IsZero() || t.Before(firstRefusal) {
						firstRefusal = t
					}
				default:
					t.Errorf("child %d life %d: reserve %s: %s", e.Child, e.Life, e.Key, e.Code)
				}
			case "commit":
				w := holds[e.Hold]
				if e.Code != "" || w == nil || w.reported {
					t.Errorf("child %d life %d: commit of %s: %q (hold %+v)", e.Child, e.Life, e.Hold, e.Code, w)
					continue
				}
				w.reported, w.committed = true, e.Amount
				reported += e.Amount
				commits++
			case "release":
				if e.Code != "" {
					t.Errorf("child %d life %d: release of %s: %s", e.Child, e.Life, e.Hold, e.Code)
				}
			}
		}
	}

	var unreported int64 // committed, but the kill came before the report
	// Every reported commit of a sub-hold is journaled exactly once, for
	// its amount; a journaled commit nobody reported was cut off by a kill.
	for id, amounts := range jcommits {
		w := holds[id]
		switch {
		case w == nil:
			t.Errorf("journaled commit of %s, a hold no child reported granted", id)
		case len(amounts) != 1:
			t.Errorf("hold %s journaled as committed %d times", id, len(amounts))
		case w.reported && amounts[0] != w.committed:
			t.Errorf("hold %s journaled committed %d, reported %d", id, amounts[0], w.committed)
		case !w.reported && !killed[w.life]:
			t.Errorf("hold %s journaled committed by a life that was not killed", id)
		case !w.reported:
			unreported += amounts[0]
		}
	}
	for id, w := range holds {
		if w.reported && strings.HasPrefix(id, "lsub_") && len(jcommits[id]) == 0 {
			t.Errorf("reported commit of %s (%d) is in no journal", id, w.committed)
		}
	}

	// What the database holds: every lease committed for exactly its
	// journaled commits; direct holds as reported.
	rows, err := admin.Query(`SELECT id, idem_key, amount, committed, state FROM agentprov_budget_holds`)
	if err != nil {
		t.Fatal(err)
	}
	var dbCommitted, dbLeases, dbDirect, strayHeld int64
	leaseRows := map[string]bool{}
	for rows.Next() {
		var id, key, state string
		var amount, committed int64
		if err := rows.Scan(&id, &key, &amount, &committed, &state); err != nil {
			t.Fatal(err)
		}
		if state == string(budget.HoldCommitted) {
			dbCommitted += committed
		}
		if strings.HasPrefix(key, "lease:") {
			dbLeases++
			leaseRows[key] = true
			if state != string(budget.HoldCommitted) || committed != leaseSum[key] {
				t.Errorf("lease %s (%s): %s committed %d; its journal says %d", key, id, state, committed, leaseSum[key])
			}
			continue
		}
		dbDirect++
		w := holds[id]
		var cl, lf int
		if _, err := fmt.Sscanf(key, "c%d-l%d-", &cl, &lf); err != nil {
			t.Errorf("hold %s has key %q from no child", id, key)
			continue
		}
		switch {
		case w != nil && w.reported:
			if state != string(budget.HoldCommitted) || committed != w.committed {
				t.Errorf("direct hold %s: %s committed %d; reported %d", id, state, committed, w.committed)
			}
		case !killed[[2]int{cl, lf}]:
			if state == string(budget.HoldActive) || state == string(budget.HoldCommitted) {
				t.Errorf("direct hold %s (%s) of a clean life is %s unreported", id, key, state)
			}
		case state == string(budget.HoldActive):
			strayHeld += amount // a killed life's: it expires
		case state == string(budget.HoldCommitted):
			unreported += committed
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for key := range granted {
		if !leaseRows[key] {
			t.Errorf("granted lease %s is not in the database", key)
		}
	}

	u, err := budget.NewLedger(store, killOptions("").Ledger)
	if err != nil {
		t.Fatal(err)
	}
	usage, err := u.Usage(ctx, killScope)
	if err != nil {
		t.Fatal(err)
	}
	c := usage.Counters[1] // the provider's monthly cap
	before := 0
	for _, k := range killedAt {
		if firstRefusal.IsZero() || k.Before(firstRefusal) {
			before++
		}
	}
	t.Logf("%d processes × %d goroutines, %d kills (%d before the cap first refused, at %v), %d lives, %v: %d reservations, %d granted, %d refused by the cap; %d commits reported for %d; store committed %d of cap %d (%d over), held %d by killed lives' direct holds; %d lease holds, %d direct holds",
		killChildren, killWorkers, len(killed), before, firstRefusal.Sub(start).Round(time.Millisecond), len(lives), elapsed.Round(time.Millisecond), reserves, grants, refused, commits, reported, c.Committed, killCap, max(0, c.Spent()-killCap), strayHeld, dbLeases, dbDirect)
	if c.Limit == nil || c.Limit.Amount != killCap {
		t.Fatalf("counter %+v: not the cap under test", c)
	}
	if c.Committed != dbCommitted || c.Arrears != 0 || c.Held != strayHeld {
		t.Errorf("counter %+v: want committed %d, held %d, no arrears", c, dbCommitted, strayHeld)
	}
	if c.Spent() > killCap || reported > killCap {
		t.Errorf("overspend: store spent %d, reported %d, cap %d", c.Spent(), reported, killCap)
	}
	if c.Committed < reported {
		t.Errorf("lost commits: store committed %d < reported %d", c.Committed, reported)
	}
	if refused == 0 || len(killed) < 6 {
		t.Errorf("the cap never ran out (%d refused) or too few kills (%d): the test proves little", refused, len(killed))
	}
	if c.Committed-reported != unreported {
		t.Errorf("store committed %d = reported %d + %d; the kills cut off %d reports", c.Committed, reported, c.Committed-reported, unreported)
	}

	// Later, the killed lives' direct holds have expired; nothing else
	// changed.
	lo := *killOptions("").Ledger
	lo.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	later, err := budget.NewLedger(store, &lo)
	if err != nil {
		t.Fatal(err)
	}
	if usage, err = later.Usage(ctx, killScope); err != nil {
		t.Fatal(err)
	}
	if c2 := usage.Counters[1]; c2.Held != 0 || c2.Committed != c.Committed || c2.Arrears != 0 {
		t.Errorf("after expiry, counter %+v: want committed %d, nothing held", c2, c.Committed)
	}
}

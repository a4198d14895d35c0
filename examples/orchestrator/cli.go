package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Exit codes are part of the CLI's contract with agents; see README.md.
const (
	exitOK           = 0
	exitError        = 1 // anything not listed below
	exitUsage        = 2 // bad command line
	exitNotInit      = 3 // no project here: run init
	exitNeedsHuman   = 4 // terms or a paid service need a flag a human set
	exitPayment      = 5 // refused by a spending cap or the per-call ceiling
	exitProvider     = 6 // a provider could not be reached or refused
	exitNotFound     = 7 // unknown provider, service or resource
	exitUnauthorized = 8 // the action needs the user, not the agent
)

// cliError is an error with a stable code for the JSON envelope and an exit code.
type cliError struct {
	Code string
	Exit int
	Msg  string
	Err  error
	// Details, when set, is sent as the envelope error's "details".
	Details any
	// Hint, when set, is what to do, appended to the cause's sentence.
	Hint string
	// label is set when Msg only names the class of Err (classify's
	// errors): the sentence is then Err's own.
	label bool
}

func (e *cliError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *cliError) Unwrap() error { return e.Err }

// sentence is the one sentence shown for e: its cause's sentence when it
// has one (Msg is then the class, which the code already says), else Msg;
// with the hint of Msg kept when it tells what to do.
func (e *cliError) sentence() string {
	if e.Err == nil || !e.label {
		return finish(e.Msg)
	}
	s := sentence(e.Err)
	if e.Hint != "" {
		s = strings.TrimSuffix(s, ".") + "; " + e.Hint
	}
	return finish(s)
}

func fail(exit int, code, format string, args ...any) *cliError {
	return &cliError{Code: code, Exit: exit, Msg: fmt.Sprintf(format, args...)}
}

func wrap(exit int, code string, err error, format string, args ...any) *cliError {
	return &cliError{Code: code, Exit: exit, Msg: fmt.Sprintf(format, args...), Err: err, label: true}
}

// envelope is the stable --json output: {"ok", "data", "error":{"code","message"}}.
type envelope struct {
	OK    bool           `json:"ok"`
	Data  any            `json:"data,omitempty"`
	Error *envelopeError `json:"error,omitempty"`
}

type envelopeError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// output writes results either as human text or as the JSON envelope, and
// progress lines to stderr (never to stdout, so --json stays parseable).
type output struct {
	json   bool
	stdout io.Writer
	stderr io.Writer
	quiet  bool
	// tick is the interval of waiting's lines; 0 means 1 s on a
	// terminal, 30 s elsewhere.
	tick time.Duration
}

func (o *output) progress(format string, args ...any) {
	if o.quiet {
		return
	}
	fmt.Fprintf(o.stderr, "… "+format+"\n", args...)
}

// waiting shows that a long wait goes on (a device approval, a
// provisioning poll): how long it has waited and how long is left until
// until (zero: no deadline). On a terminal it rewrites one line every
// second; elsewhere it adds a line every 30 seconds, so logs stay
// readable. The returned stop ends it; call it once.
func (o *output) waiting(what string, until time.Time) (stop func()) {
	if o.quiet {
		return func() {}
	}
	term := isTerminal(o.stderr)
	tick := o.tick
	switch {
	case tick > 0:
	case term:
		tick = time.Second
	default:
		tick = 30 * time.Second
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(tick)
		defer t.Stop()
		wrote := false
		for {
			select {
			case <-done:
				if term && wrote {
					fmt.Fprint(o.stderr, "\n")
				}
				return
			case now := <-t.C:
				line := fmt.Sprintf("… still %s (%ds", what, int(now.Sub(start).Seconds()))
				if !until.IsZero() {
					line += fmt.Sprintf(", %ds left", max(0, int(until.Sub(now).Seconds())))
				}
				line += ")"
				if term {
					fmt.Fprint(o.stderr, "\r\033[K"+line)
				} else {
					fmt.Fprintln(o.stderr, line)
				}
				wrote = true
			}
		}
	}()
	return func() { close(done); <-finished }
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (o *output) result(data any, human func(w io.Writer)) {
	if o.json {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(envelope{OK: true, Data: data})
		return
	}
	human(o.stdout)
}

func (o *output) failure(err error) int {
	var ce *cliError
	if !errors.As(err, &ce) {
		ce = &cliError{Code: "error", Exit: exitError, Msg: err.Error()}
	}
	msg := ce.sentence()
	details := ce.Details
	if ce.Err != nil && (!ce.label || sentence(ce.Err) != finish(ce.Err.Error())) {
		// The full chain, for whoever debugs it; the message stays one
		// sentence.
		m, ok := details.(map[string]any)
		if !ok && details == nil {
			m, ok = map[string]any{}, true
		}
		if ok {
			m["cause"] = ce.Err.Error()
			details = m
		}
	}
	if o.json {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(envelope{OK: false, Error: &envelopeError{Code: ce.Code, Message: msg, Details: details}})
	} else {
		fmt.Fprintf(o.stderr, "error: %s\n", msg)
	}
	return ce.Exit
}

// isInteractive reports whether a human could answer a prompt on stdin:
// a terminal, not a pipe, a file or /dev/null (a character device too).
func isInteractive() bool {
	fi, err := os.Stdin.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

func table(w io.Writer, rows [][]string) {
	if len(rows) == 0 {
		return
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			if i < len(widths) && len(c) > widths[i] {
				widths[i] = len(c)
			}
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-len(c)+2))
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

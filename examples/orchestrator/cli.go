package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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
}

func (e *cliError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *cliError) Unwrap() error { return e.Err }

func fail(exit int, code, format string, args ...any) *cliError {
	return &cliError{Code: code, Exit: exit, Msg: fmt.Sprintf(format, args...)}
}

func wrap(exit int, code string, err error, format string, args ...any) *cliError {
	return &cliError{Code: code, Exit: exit, Msg: fmt.Sprintf(format, args...), Err: err}
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
}

func (o *output) progress(format string, args ...any) {
	if o.quiet {
		return
	}
	fmt.Fprintf(o.stderr, "… "+format+"\n", args...)
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
	if o.json {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(envelope{OK: false, Error: &envelopeError{Code: ce.Code, Message: ce.Error(), Details: ce.Details}})
	} else {
		fmt.Fprintf(o.stderr, "error: %s\n", ce.Error())
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

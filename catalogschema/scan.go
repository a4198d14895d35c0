package catalogschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// limits returns lim with defaults filled in.
func (lim *Limits) resolved() Limits {
	var l Limits
	if lim != nil {
		l = *lim
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxServices <= 0 {
		l.MaxServices = DefaultMaxServices
	}
	if l.MaxStringLen <= 0 {
		l.MaxStringLen = DefaultMaxStringLen
	}
	return l
}

// DefaultLimits returns the limits a nil *Limits stands for.
func DefaultLimits() Limits { return (*Limits)(nil).resolved() }

// scanFrame is one open object or array of the pre-decode scan.
type scanFrame struct {
	object    bool
	expectKey bool
	keys      map[string]struct{}
	key       string // current member name (escaped pointer token)
	idx       int    // current element index of an array
}

// framePointer renders the pointer of the current member of every frame.
func framePointer(stack []scanFrame) string {
	toks := make([]string, len(stack))
	for i, f := range stack {
		if f.object {
			toks[i] = f.key
		} else {
			toks[i] = strconv.Itoa(f.idx)
		}
	}
	return joinPointer(toks)
}

// precheck enforces the size, depth and string-length limits and rejects
// duplicate member names, all in one pass over the bytes and before any
// decoding allocates per value. It returns a *LimitError, a *ValidationError
// for a duplicate name, or nil. Malformed JSON is left to the decoder: the
// scan only needs to be exact for well-formed input.
func precheck(data []byte, l Limits, doc string) error {
	if int64(len(data)) > l.MaxBytes {
		return &LimitError{Limit: LimitBytes, Max: l.MaxBytes, Got: int64(len(data))}
	}
	_, dups, err := scan(data, l, true)
	if err != nil {
		return err
	}
	if len(dups) > 0 {
		return &ValidationError{Document: doc, Violations: dups}
	}
	return nil
}

// scan walks data tracking open containers and their current members. It
// stops with a *LimitError at the first depth or string-length excess and,
// if dupCheck, collects duplicate member names. It returns the containers
// still open at the end of data.
func scan(data []byte, l Limits, dupCheck bool) ([]scanFrame, []Violation, error) {
	stack := make([]scanFrame, 0, 16)
	var dups []Violation
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{', '[':
			if len(stack) >= l.MaxDepth {
				return nil, nil, &LimitError{Limit: LimitDepth, Max: int64(l.MaxDepth), Got: int64(len(stack) + 1)}
			}
			stack = append(stack, scanFrame{object: c == '{', expectKey: c == '{'})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 {
				if stack[n-1].object {
					stack[n-1].expectKey = true
				} else {
					stack[n-1].idx++
				}
			}
		case '"':
			start := i
			escaped := false
			i++
			for ; i < len(data); i++ {
				if data[i] == '\\' {
					escaped = true
					i++
					continue
				}
				if data[i] == '"' {
					break
				}
			}
			if n := i - start - 1; n > l.MaxStringLen {
				return nil, nil, &LimitError{Limit: LimitStringLen, Max: int64(l.MaxStringLen), Got: int64(n)}
			}
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey && i < len(data) {
				f := &stack[n-1]
				f.expectKey = false
				key := string(data[start+1 : i])
				if escaped {
					var s string
					if json.Unmarshal(data[start:i+1], &s) != nil {
						continue // the decoder reports it
					}
					key = s
				}
				f.key = escapePointer(key)
				if !dupCheck {
					continue
				}
				if f.keys == nil {
					f.keys = make(map[string]struct{}, 16)
				}
				if _, dup := f.keys[key]; dup {
					dups = append(dups, Violation{Pointer: framePointer(stack), Message: "duplicate member name"})
				}
				f.keys[key] = struct{}{}
			}
		}
	}
	return stack, dups, nil
}

// decodeGeneric decodes data into the generic form the schema validator
// needs, with numbers kept exact, and rejects trailing data.
func decodeGeneric(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, syntaxError(err, d.InputOffset())
	}
	if _, err := d.Token(); err == nil {
		return nil, &SyntaxError{Offset: d.InputOffset(), Err: errors.New("data after the top-level value")}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(err, d.InputOffset())
	}
	return v, nil
}

func syntaxError(err error, off int64) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &SyntaxError{Offset: se.Offset, Err: err}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &SyntaxError{Offset: off, Err: io.ErrUnexpectedEOF}
	}
	return &SyntaxError{Offset: off, Err: err}
}

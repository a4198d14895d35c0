package paywire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the package's one JSON canonicalizer, RFC 8785 (JCS).
// Idempotency fingerprints (CanonicalJSON) and the 402 challenge
// parameters (JCSEncode, JCSB64) both go through writeJCS, so the two can
// never disagree on what "the same JSON" is.

// MaxJSONDepth bounds nesting in CanonicalJSON.
const MaxJSONDepth = 64

// JCSDecode reads one JSON value from dec as the generic Go values writeJCS
// takes, rejecting duplicate member names (which a map would silently
// collapse) and excessive depth.
func JCSDecode(dec *json.Decoder, depth int) (any, error) {
	if depth > MaxJSONDepth {
		return nil, errors.New("canonical json: nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("canonical json: %w", err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("canonical json: object key is not a string")
				}
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("canonical json: duplicate member %q", k)
				}
				if m[k], err = JCSDecode(dec, depth+1); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("canonical json: %w", err)
			}
			return m, nil
		case '[':
			a := []any{}
			for dec.More() {
				e, err := JCSDecode(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, e)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("canonical json: %w", err)
			}
			return a, nil
		}
		return nil, errors.New("canonical json: unexpected delimiter")
	case json.Number:
		// Parse now so that an out-of-range number is a decode error.
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return nil, fmt.Errorf("canonical json: number %q is not an IEEE 754 double", string(t))
		}
		return f, nil
	case string, bool, nil:
		return t, nil
	}
	return nil, errors.New("canonical json: unexpected token")
}

// JCSEncode renders v as RFC 8785 (JCS) canonical JSON. v is what
// encoding/json decodes into (maps, slices, strings, bools, nil, float64,
// json.Number), plus int, int64 and map[string]string for callers that
// build values by hand.
func JCSEncode(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := writeJCS(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// JCSB64 is base64url (no padding) of the JCS form of v.
func JCSB64(v any) (string, error) {
	c, err := JCSEncode(v)
	if err != nil {
		return "", err
	}
	return HdrB64.EncodeToString(c), nil
}

func writeJCS(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case string:
		return writeJCSString(b, x)
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return fmt.Errorf("number %q: %w", string(x), err)
		}
		return writeJCSNumber(b, f)
	case float64:
		return writeJCSNumber(b, x)
	case int:
		return writeJCSNumber(b, float64(x))
	case int64:
		return writeJCSNumber(b, float64(x))
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJCS(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return writeJCS(b, m)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return compareUTF16(keys[i], keys[j]) < 0 })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJCSString(b, k); err != nil {
				return err
			}
			b.WriteByte(':')
			if err := writeJCS(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("type %T has no canonical JSON form", v)
	}
	return nil
}

// compareUTF16 orders member names by their UTF-16 code units (RFC 8785
// §3.2.3), which differs from UTF-8 byte order above U+FFFF.
func compareUTF16(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func writeJCSString(b *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return errors.New("string is not valid UTF-8")
	}
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
			} else {
				b.WriteByte(c) // multi-byte UTF-8 is copied byte by byte
			}
		}
	}
	b.WriteByte('"')
	return nil
}

// writeJCSNumber follows ECMAScript Number::toString, which JCS mandates.
func writeJCSNumber(b *bytes.Buffer, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("number %v has no JSON form", f)
	}
	if f == 0 {
		b.WriteByte('0') // also -0
		return nil
	}
	a := math.Abs(f)
	if a >= 1e-6 && a < 1e21 {
		b.WriteString(strconv.FormatFloat(f, 'f', -1, 64))
		return nil
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	// Go writes e+07 / e-07; ECMAScript writes e+7 / e-7.
	mant, exp, _ := strings.Cut(s, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	b.WriteString(mant)
	b.WriteByte('e')
	b.WriteByte(sign)
	b.WriteString(exp)
	return nil
}

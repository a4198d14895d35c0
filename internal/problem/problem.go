// Package problem writes and reads the protocol's error body: RFC 9457
// problem details extended with a stable machine-readable "code".
package problem

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// MediaType is the content type of every protocol error body.
const MediaType = "application/problem+json"

// TypeBase prefixes the "type" URI of the protocol's own problem codes.
const TypeBase = "https://agentprov.dev/problems/"

// Details is an RFC 9457 problem document with the protocol's "code" member.
type Details struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title,omitempty"`
	Status int    `json:"status,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Code is the protocol error code, such as "invalid_ref"; clients branch on it.
	Code string `json:"code,omitempty"`
	// Instance optionally identifies this occurrence.
	Instance string `json:"instance,omitempty"`
}

// Error is "code (status): detail", for client-side logs.
func (d *Details) Error() string {
	if d.Detail != "" {
		return fmt.Sprintf("%s (%d): %s", d.Code, d.Status, d.Detail)
	}
	return fmt.Sprintf("%s (%d)", d.Code, d.Status)
}

// Write sends a problem body with the given status and code. Detail must
// never contain secrets or internal error text.
func Write(w http.ResponseWriter, status int, code, detail string) {
	WriteDetails(w, &Details{
		Type:   TypeBase + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
	})
}

// WriteDetails sends d as the response body with d.Status.
func WriteDetails(w http.ResponseWriter, d *Details) {
	h := w.Header()
	h.Set("Content-Type", MediaType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	_ = json.NewEncoder(w).Encode(d)
}

// Read decodes at most limit bytes of a problem body. It returns nil when the
// body is not a problem document.
func Read(r io.Reader, limit int64) *Details {
	var d Details
	if err := json.NewDecoder(io.LimitReader(r, limit)).Decode(&d); err != nil {
		return nil
	}
	if d.Code == "" && d.Type == "" {
		return nil
	}
	return &d
}

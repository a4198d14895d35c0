package payment

import "net/http"

// StoredResponse is a response a Paywall withheld or delivered, replayed to
// a retry that presents the same credential.
type StoredResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// Clone returns a deep copy of r (nil for nil).
func (r *StoredResponse) Clone() *StoredResponse {
	if r == nil {
		return nil
	}
	return &StoredResponse{Status: r.Status, Header: r.Header.Clone(), Body: append([]byte(nil), r.Body...)}
}

// WriteStored writes r to w: its headers, status and body, as recorded.
func WriteStored(w http.ResponseWriter, r *StoredResponse) {
	h := w.Header()
	for k, v := range r.Header {
		h[k] = append([]string(nil), v...)
	}
	w.WriteHeader(r.Status)
	_, _ = w.Write(r.Body)
}

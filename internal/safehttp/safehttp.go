// Package safehttp holds the checks applied to everything the library fetches
// from the network: HTTPS-or-loopback URLs and bounded bodies.
package safehttp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
)

// ErrInsecureURL reports a URL that is neither https nor http on a loopback host.
var ErrInsecureURL = errors.New("url must be https, or http on a loopback host")

// ErrTooLarge reports a body longer than the allowed limit.
var ErrTooLarge = errors.New("body exceeds size limit")

// CheckURL accepts https URLs and http URLs whose host is loopback
// (localhost, 127.0.0.0/8, ::1). It rejects every other scheme, userinfo and
// empty hosts.
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrInsecureURL, raw, err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: %q carries user info", ErrInsecureURL, raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: %q has no host", ErrInsecureURL, raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return u, nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrInsecureURL, raw)
}

// IsLoopback reports whether host names the local machine.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReadAll reads r to the end, failing with ErrTooLarge once more than limit
// bytes arrive. It never buffers more than limit+1 bytes.
func ReadAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

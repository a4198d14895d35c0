package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeAndShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	data := t.TempDir()
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-data", data, "-profile", "registrar",
			"-orchestrator", "http://127.0.0.1:1", "-redemption-key", "k_0123456789abcdef"}, &stdout, &stderr)
	}()
	var base string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, after, ok := strings.Cut(stdout.String(), "listening on "); ok {
			base = strings.TrimSpace(after)
			break
		}
	}
	if base == "" {
		t.Fatalf("no base URL printed; stderr: %s", stderr.String())
	}
	// The protocol and the service's own routes share one mux.
	for path, want := range map[string]string{
		"/.well-known/agent-provisioning":         `"provider_id":"registrar"`,
		"/.well-known/oauth-authorization-server": `"token_endpoint":"` + base + `/oauth/token"`,
		"/healthz": "ok",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no graceful shutdown")
	}
}

func TestFlags(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-data", t.TempDir()}, &out, &out); err == nil {
		t.Fatal("started without -orchestrator and -redemption-key")
	}
	if err := run(context.Background(), []string{"-profile", "bakery", "-orchestrator", "http://127.0.0.1:1", "-redemption-key", "k"}, &out, &out); err == nil {
		t.Fatal("unknown profile accepted")
	}
}

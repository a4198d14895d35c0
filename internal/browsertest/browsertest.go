// Package browsertest starts a headless Chromium for the tests of
// agentprov's web pages, driven over the Chrome DevTools Protocol by
// chromedp. Tests skip, saying why, when no browser is installed; CI
// installs Debian's chromium and fails if they skipped.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// SkipMessage starts the message of a test skipped for lack of a browser;
// .ci/run looks for it.
const SkipMessage = "browser: no Chromium installed"

// Path returns the browser to run: $AGENTPROV_CHROMIUM, else chromium,
// chromium-browser or google-chrome on PATH; "" when none.
func Path() string {
	if p := os.Getenv("AGENTPROV_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is one headless browser tab and the JavaScript dialogs it saw.
type Browser struct {
	Ctx context.Context

	mu      sync.Mutex
	dialogs []string
}

// New starts a headless browser for t, closed when t ends. Every action
// on Ctx is bounded by timeout. It skips t when no browser is installed.
func New(t testing.TB, timeout time.Duration) *Browser {
	t.Helper()
	path := Path()
	if path == "" && os.Getenv("CI") == "true" {
		t.Fatal(SkipMessage + ", and CI=true: CI must run the browser tests (apt-get install -y chromium)")
	}
	if path == "" {
		t.Skip(SkipMessage + " (apt-get install -y chromium, or set AGENTPROV_CHROMIUM)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(900, 760),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	b := &Browser{Ctx: ctx}
	// Start the browser, then record (and dismiss) every dialog: a page
	// that runs injected script would open one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: start %s: %v", path, err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Message)
			b.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return b
}

// Dialogs returns the messages of every alert, confirm or prompt opened.
func (b *Browser) Dialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// Do runs steps in the tab, failing t on error.
func (b *Browser) Do(t testing.TB, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.Ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// Eval evaluates a JavaScript expression in the page (from the test, over
// CDP: the pages themselves run no script) and decodes its value.
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("browser: eval %s: %v", expr, err)
	}
	return v
}

// Screenshot saves a PNG of the whole page to path when path is not empty.
func (b *Browser) Screenshot(t testing.TB, path string) {
	t.Helper()
	if path == "" {
		return
	}
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

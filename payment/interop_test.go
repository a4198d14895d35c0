package payment_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
)

// mppVectors are mpp-go's published challenge-id vectors
// (pkg/mpp/challenge_vectors_test.go).
var mppVectors = []struct {
	name, secret, realm, method, intent, expires, digest string
	request                                              map[string]any
	opaque                                               map[string]string
	id                                                   string
}{
	{"basic charge", "test-secret-key-12345", "api.example.com", "tempo", "charge", "", "",
		map[string]any{"amount": "1000000", "currency": "0x20c0000000000000000000000000000000000000", "recipient": "0x1234567890abcdef1234567890abcdef12345678"},
		nil, "XmJ98SdsAdzwP9Oa-8In322Uh6yweMO6rywdomWk_V4"},
	{"with expires", "test-secret-key-12345", "api.example.com", "tempo", "charge", "2026-01-29T12:00:00Z", "",
		map[string]any{"amount": "5000000", "currency": "0x20c0000000000000000000000000000000000000", "recipient": "0xabcdef1234567890abcdef1234567890abcdef12"},
		nil, "EvqUWMPJjqhoVJVG3mhTYVqCa3Mk7bUVd_OjeJGek1A"},
	{"with digest", "my-server-secret", "payments.example.org", "tempo", "charge", "", "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
		map[string]any{"amount": "250000", "currency": "USD", "recipient": "0x9999999999999999999999999999999999999999"},
		nil, "qcJUPoapy4bFLznQjQUutwPLyXW7FvALrWA_sMENgAY"},
	{"full challenge", "production-secret-abc123", "api.tempo.xyz", "tempo", "charge", "2026-02-01T00:00:00Z", "sha-256=abc123def456",
		map[string]any{"amount": "10000000", "currency": "0x20c0000000000000000000000000000000000000", "recipient": "0x742d35Cc6634C0532925a3b844Bc9e7595f1B0F2", "description": "API access fee", "externalId": "order-12345"},
		nil, "J6w7zq6nHLnchss3AYbLxNirdpuaV8_Msn37DQSz6Bw"},
	{"unicode request data", "unicode-test-key", "api.example.com", "tempo", "charge", "", "",
		map[string]any{"amount": "100", "currency": "EUR", "recipient": "0x1111111111111111111111111111111111111111", "description": "Payment for caf\u00e9 \u2615"},
		nil, "1_GKJqATKvVnIUY3f8MFq48bMs18JHz_3CBK8pu52yA"},
	{"nested methodDetails", "nested-test-key", "api.tempo.xyz", "tempo", "charge", "", "",
		map[string]any{"amount": "5000000", "currency": "0x20c0000000000000000000000000000000000000", "recipient": "0x2222222222222222222222222222222222222222",
			"methodDetails": map[string]any{"chainId": 42431, "feePayer": true}},
		nil, "VkSq83C7vQFvdX3MqHM7s-N1QOo2nae4F1iHmbV5pgg"},
	{"empty request, other intent", "test-key", "test.example.com", "tempo", "authorize", "", "",
		map[string]any{}, nil, "MYEC2oq3_B3cHa_My1Lx3NQKn_iUiMfsns6361N0SX0"},
	{"session intent", "test-vector-secret", "api.example.com", "tempo", "session", "", "",
		map[string]any{"amount": "1000000"}, nil, "aAY7_IEDzsznNYplhOSE8cERQxvjFcT4Lcn-7FHjLVE"},
	{"with opaque and expires", "test-vector-secret", "api.example.com", "tempo", "charge", "2025-01-06T12:00:00Z", "",
		map[string]any{"amount": "1000000"}, map[string]string{"pi": "pi_3abc123XYZ"}, "KAfoMrA4fnzS1DPWN_cUv_b3_yHxCizdp6OhH7gluMY"},
	{"with empty opaque object", "test-vector-secret", "api.example.com", "tempo", "charge", "", "",
		map[string]any{"amount": "1000000"}, map[string]string{}, "vb4IyH-0LdJ3s7L0QAw8jIzcZkyxksPhIvEfmHmzA9k"},
	{"with multi key opaque", "test-vector-secret", "api.example.com", "tempo", "charge", "", "",
		map[string]any{"amount": "1000000"}, map[string]string{"deposit": "dep_456", "pi": "pi_3abc123XYZ"}, "aKskU8sadR5ZuFbUCsIwhO-ENxuVpTw17FdwHEXsJDk"},
}

// mppStyleChallenge writes the header mpp-go's formatter emits for v.
func mppStyleChallenge(t *testing.T, id, realm, method, intent, req, digest, expires, desc, opaque string) string {
	t.Helper()
	var parts []string
	for _, p := range [][2]string{{"id", id}, {"realm", realm}, {"method", method}, {"intent", intent}, {"request", req},
		{"digest", digest}, {"expires", expires}, {"description", desc}, {"opaque", opaque}} {
		if p[1] != "" {
			parts = append(parts, fmt.Sprintf(`%s="%s"`, p[0], strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p[1])))
		}
	}
	return "Payment " + strings.Join(parts, ", ")
}

func TestInteropMPPChallengeVectors(t *testing.T) {
	for _, v := range mppVectors {
		t.Run(v.name, func(t *testing.T) {
			req, err := paywire.JCSB64(v.request)
			if err != nil {
				t.Fatal(err)
			}
			opaque := ""
			if v.opaque != nil {
				if opaque, err = paywire.JCSB64(v.opaque); err != nil {
					t.Fatal(err)
				}
			}
			// Our HMAC binding over the same slots gives their id.
			got := payment.ChallengeMAC([]byte(v.secret), &payment.ChallengeEcho{Realm: v.realm, Method: v.method, Intent: v.intent, Request: req, Expires: v.expires, Digest: v.digest, Opaque: opaque})
			if got != v.id {
				t.Fatalf("challenge id %s, mpp-go's vector says %s", got, v.id)
			}
			// Their header parses with ours, and the echo we would send
			// back still verifies under their secret.
			h := mppStyleChallenge(t, v.id, v.realm, v.method, v.intent, req, v.digest, v.expires, "", opaque)
			cs, err := payment.ParseChallenges([]string{h})
			if err != nil {
				t.Fatalf("parse %s: %v", h, err)
			}
			c := cs[0]
			if c.ID != v.id || c.Realm != v.realm || c.Method != v.method || c.Intent != v.intent || c.Digest != v.digest {
				t.Fatalf("parsed %+v", c)
			}
			if v.intent == payment.IntentCharge && v.request["amount"] != nil && c.Request.Amount != v.request["amount"] {
				t.Fatalf("amount %q", c.Request.Amount)
			}
			e, err := c.Echo()
			if err != nil {
				t.Fatal(err)
			}
			if !payment.VerifyEchoID([][]byte{[]byte(v.secret)}, &e) {
				t.Fatal("echo of a parsed mpp-go challenge does not verify")
			}
			// And our own formatting of it stays acceptable to mpp-go.
			if v.intent == payment.IntentCharge && v.request["currency"] != nil {
				ours, err := payment.FormatChallenge(&c)
				if err != nil {
					t.Fatal(err)
				}
				if err := mppAcceptsChallenge(ours); err != nil {
					t.Fatalf("mpp-go rules refuse %s: %v", ours, err)
				}
			}
		})
	}
}

// mpp-go's encoder: encoding/json of a map (sorted keys), base64url, no padding.
func mppB64(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestInteropMPPCredentialAndReceipt(t *testing.T) {
	// A credential as mpp-go's FormatAuthorization writes it (their
	// TestParseCredential fixture: tempo method, hash payload, DID source).
	req := mppB64(t, map[string]any{"amount": "100", "currency": "0xabc"})
	opaque, _ := paywire.JCSB64(map[string]string{"trace": "123", "route": "paid"})
	h := "Payment " + mppB64(t, map[string]any{
		"challenge": map[string]any{"id": "challenge-id", "realm": "api.example.com", "method": "tempo", "intent": "charge", "request": req, "opaque": opaque},
		"payload":   map[string]any{"type": "hash", "hash": "0xabc123"},
		"source":    "did:pkh:eip155:42431:0x1234",
	})
	cred, err := payment.ParseCredential(h)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Challenge.ID != "challenge-id" || cred.Challenge.Request != req || cred.Challenge.Opaque != opaque || cred.Source != "did:pkh:eip155:42431:0x1234" {
		t.Fatalf("parsed %+v", cred.Challenge)
	}
	var p map[string]string
	if err := json.Unmarshal(cred.Payload, &p); err != nil || p["hash"] != "0xabc123" {
		t.Fatalf("payload %s", cred.Payload)
	}
	// Merged with a Digest credential, as in their fixture.
	if _, err := payment.ParseCredential(`Digest realm="alpha,beta", nonce="123", ` + h); err != nil {
		t.Fatal(err)
	}

	// Receipts as mpp-go's FormatPaymentReceipt writes them.
	for _, r := range []map[string]any{
		{"status": "success", "method": "tempo", "timestamp": "2026-01-01T00:00:00.000Z", "reference": "0xdeadbeef"},
		{"status": "success", "method": "tempo", "timestamp": "2026-01-01T00:00:00Z", "reference": "ref-123", "externalId": "ext-123", "subscriptionId": "sub-123", "extra": map[string]any{"settled": true}},
	} {
		got, err := payment.ParseReceiptHeader(mppB64(t, r))
		if err != nil {
			t.Fatalf("receipt %v: %v", r, err)
		}
		if got.Reference != r["reference"] || got.Method != "tempo" || got.Timestamp.Year() != 2026 {
			t.Fatalf("parsed %+v", got)
		}
	}

	// Ours pass their rules.
	c := sampleChallenge(t)
	ch, _ := payment.FormatChallenge(c)
	if err := mppAcceptsChallenge(ch); err != nil {
		t.Fatalf("challenge %s: %v", ch, err)
	}
	oc, _ := payment.NewTokenCredential(c, fakeToken)
	cv, _ := payment.FormatCredential(oc)
	if err := mppAcceptsCredential(cv); err != nil {
		t.Fatalf("credential: %v", err)
	}
	rv, _ := payment.FormatReceiptHeader(sampleReceiptHeader())
	if err := mppAcceptsReceipt(rv); err != nil {
		t.Fatalf("receipt: %v", err)
	}
}

// TestInteropPaywallHeaders checks the headers a running Paywall emits,
// not just hand-built ones, against mpp-go's rules.
func TestInteropPaywallHeaders(t *testing.T) {
	w := newE2E(t, e2eConfig{})
	resp, _, err := w.get("/v1/check?name=interop.dev")
	if err != nil {
		t.Fatal(err)
	}
	if err := mppAcceptsReceipt(resp.Header.Get(payment.ReceiptHeaderName)); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	r, err := w.provider.Client().Get(w.provider.URL + "/v1/check?name=interop.dev")
	if err != nil {
		t.Fatal(err)
	}
	payment.Discard(r)
	for _, v := range r.Header.Values("WWW-Authenticate") {
		if err := mppAcceptsChallenge(v); err != nil {
			t.Fatalf("challenge %s: %v", v, err)
		}
	}
}

func strictObject(s string) (map[string]any, error) {
	if strings.ContainsAny(s, "=+/") {
		return nil, fmt.Errorf("not unpadded base64url: %q", s)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not an object")
	}
	return m, nil
}

func mppAcceptsChallenge(h string) error {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Payment") {
		return fmt.Errorf("not Payment + space")
	}
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimLeft(rest, ", ") {
		i := strings.IndexByte(rest, '=')
		if i <= 0 {
			return fmt.Errorf("malformed auth-param near %q", rest)
		}
		key := rest[:i]
		for _, c := range key {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return fmt.Errorf("param name %q", key)
			}
		}
		rest = rest[i+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			j, esc, closed := 1, false, false
			for ; j < len(rest); j++ {
				c := rest[j]
				if esc {
					b.WriteByte(c)
					esc = false
				} else if c == '\\' {
					esc = true
				} else if c == '"' {
					closed = true
					break
				} else {
					b.WriteByte(c)
				}
			}
			if !closed {
				return fmt.Errorf("unterminated quote")
			}
			val, rest = b.String(), rest[j+1:]
		} else {
			j := strings.IndexByte(rest, ',')
			if j < 0 {
				j = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:j]), rest[j:]
		}
		if _, dup := params[key]; dup {
			return fmt.Errorf("duplicate %s", key)
		}
		params[key] = val
	}
	for _, n := range []string{"id", "realm", "method", "intent", "request"} {
		if params[n] == "" {
			return fmt.Errorf("missing %s", n)
		}
	}
	if _, err := strictObject(params["request"]); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if o, ok := params["opaque"]; ok {
		if _, err := strictObject(o); err != nil {
			return fmt.Errorf("opaque: %w", err)
		}
	}
	if e := params["expires"]; e != "" {
		if _, err := time.Parse(time.RFC3339, e); err != nil {
			return fmt.Errorf("expires: %w", err)
		}
	}
	return nil
}

func mppAcceptsCredential(h string) error {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Payment") {
		return fmt.Errorf("not Payment + space")
	}
	m, err := strictObject(strings.TrimSpace(rest))
	if err != nil {
		return err
	}
	ch, ok := m["challenge"].(map[string]any)
	if !ok {
		return fmt.Errorf("challenge is not an object")
	}
	if _, ok := m["payload"].(map[string]any); !ok {
		return fmt.Errorf("payload is not an object")
	}
	for _, n := range []string{"id", "method", "intent", "request"} {
		if s, _ := ch[n].(string); s == "" {
			return fmt.Errorf("challenge.%s missing", n)
		}
	}
	if o, ok := ch["opaque"].(string); ok {
		if _, err := strictObject(o); err != nil {
			return fmt.Errorf("opaque: %w", err)
		}
	}
	return nil
}

func mppAcceptsReceipt(h string) error {
	m, err := strictObject(strings.TrimSpace(h))
	if err != nil {
		return err
	}
	if m["status"] != "success" {
		return fmt.Errorf("status %v", m["status"])
	}
	if s, _ := m["reference"].(string); s == "" {
		return fmt.Errorf("no reference")
	}
	ts, _ := m["timestamp"].(string)
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	method, _ := m["method"].(string)
	if method == "" || strings.Trim(method, "abcdefghijklmnopqrstuvwxyz") != "" {
		return fmt.Errorf("method %q", method)
	}
	return nil
}

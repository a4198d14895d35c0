package payment_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentprov/agentprov/internal/paywire"
	"github.com/agentprov/agentprov/payment"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

var testChallengeSecret = []byte("0123456789abcdef0123456789abcdef")

func sampleChallenge(t testing.TB) *payment.Challenge {
	t.Helper()
	c := &payment.Challenge{
		Realm: "api.cloudflare.example", Method: payment.MethodID, Intent: payment.IntentCharge,
		Request: payment.ChallengeRequest{Amount: "250", Currency: "USD", Recipient: "cloudflare",
			MethodDetails: map[string]any{"service": "cloudflare/registrar:domain"}},
		Expires:     time.Date(2026, 11, 22, 10, 5, 0, 0, time.UTC),
		Description: `Domain "check" \ availability`,
		Opaque:      map[string]string{"route": "GET /v1/domains/check?name=example.dev", "nonce": "q3Zk0xN2eR8pQ1vLm4Ty7w"},
	}
	id, err := payment.ChallengeID(testChallengeSecret, c)
	if err != nil {
		t.Fatal(err)
	}
	c.ID = id
	return c
}

var challengeCmp = cmp.Options{cmpopts.IgnoreUnexported(payment.Challenge{}), cmpopts.EquateEmpty()}

func TestChallengeFormatParseRoundTrip(t *testing.T) {
	c := sampleChallenge(t)
	v, err := payment.FormatChallenge(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, `Payment id="`) {
		t.Fatalf("value %q does not start with the scheme and id", v)
	}
	got, err := payment.ParseChallenges([]string{v})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d challenges", len(got))
	}
	want := *c
	want.RequestB64, _ = payment.EncodeRequest(c.Request)
	if d := cmp.Diff(want, got[0], challengeCmp); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
	// The parsed challenge still verifies under the secret: every slot
	// survived byte for byte.
	e, err := got[0].Echo()
	if err != nil {
		t.Fatal(err)
	}
	if !payment.VerifyEchoID([][]byte{[]byte("old-secret-old-secret-old-secret"), testChallengeSecret}, &e) {
		t.Fatal("parsed challenge id does not verify")
	}
	e.Request = strings.Replace(e.Request, "A", "B", 1)
	if payment.VerifyEchoID([][]byte{testChallengeSecret}, &e) {
		t.Fatal("altered request still verifies")
	}
}

func TestParseChallengesRFC9110(t *testing.T) {
	c := sampleChallenge(t)
	ours, err := payment.FormatChallenge(c)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := payment.EncodeRequest(payment.ChallengeRequest{Amount: "1", Currency: "EUR"})
	cases := []struct {
		name   string
		values []string
		n      int
		check  func(t *testing.T, cs []payment.Challenge)
	}{
		{"with other schemes around", []string{`Bearer realm="a,b", error="x", ` + ours + `, Basic YWxhZGRpbjpvcGVuc2VzYW1l`}, 1, nil},
		{"token68 scheme first", []string{`Negotiate abc==, ` + ours}, 1, nil},
		{"two values", []string{`Basic realm="x"`, ours}, 1, nil},
		{"two payment challenges in one value", []string{ours + ", " + ours}, 2, nil},
		{"empty list elements", []string{" , ," + ours + " ,, "}, 1, nil},
		{"case-insensitive scheme and names, token values", []string{
			`payment ID=abc, REALM=api, Method=agentprov, intent=charge, request=` + req + `, x-unknown="ignored"`}, 1,
			func(t *testing.T, cs []payment.Challenge) {
				if cs[0].ID != "abc" || cs[0].Realm != "api" || cs[0].Request.Currency != "EUR" {
					t.Fatalf("got %+v", cs[0])
				}
			}},
		{"escaped quotes in description", []string{`Payment id="i", realm="r", method="agentprov", intent="charge", request="` + req + `", description="a \"quoted\" \\ word, with comma"`}, 1,
			func(t *testing.T, cs []payment.Challenge) {
				if cs[0].Description != `a "quoted" \ word, with comma` {
					t.Fatalf("description %q", cs[0].Description)
				}
			}},
		{"BWS around =", []string{`Payment id = "i" , realm= r, method =agentprov, intent=charge, request="` + req + `"`}, 1, nil},
		{"other intent keeps raw request", []string{`Payment id="i", realm="r", method="tempo", intent="session", request="` + req + `"`}, 1,
			func(t *testing.T, cs []payment.Challenge) {
				if cs[0].Request.Amount != "" || cs[0].RequestB64 != req {
					t.Fatalf("got %+v", cs[0])
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := payment.ParseChallenges(tc.values)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != tc.n {
				t.Fatalf("got %d challenges, want %d", len(cs), tc.n)
			}
			if tc.check != nil {
				tc.check(t, cs)
			}
		})
	}
}

func TestParseChallengesErrors(t *testing.T) {
	req, _ := payment.EncodeRequest(payment.ChallengeRequest{Amount: "1", Currency: "EUR"})
	base := `Payment id="i", realm="r", method="agentprov", intent="charge", request="` + req + `"`
	notObject := paywire.HdrB64.EncodeToString([]byte(`[1]`))
	cases := []struct {
		name  string
		value string
		want  *payment.Error
	}{
		{"no payment challenge", `Bearer realm="x"`, payment.ErrNoChallenge},
		{"empty", ``, payment.ErrNoChallenge},
		{"duplicate param", base + `, id="j"`, payment.ErrMalformedChallenge},
		{"duplicate param other case", base + `, ID="j"`, payment.ErrMalformedChallenge},
		{"unterminated quote", base + `, description="abc`, payment.ErrMalformedChallenge},
		{"control char", base + ", description=\"a\x01b\"", payment.ErrMalformedChallenge},
		{"missing id", `Payment realm="r", method="agentprov", intent="charge", request="` + req + `"`, payment.ErrMalformedChallenge},
		{"missing request", `Payment id="i", realm="r", method="agentprov", intent="charge"`, payment.ErrMalformedChallenge},
		{"bad method id", strings.Replace(base, "agentprov", "Agent-Prov", 1), payment.ErrMalformedChallenge},
		{"request not base64url", strings.Replace(base, req, "!!", 1), payment.ErrMalformedChallenge},
		{"request not object", strings.Replace(base, req, notObject, 1), payment.ErrMalformedChallenge},
		{"currency not a string", strings.Replace(base, req, paywire.HdrB64.EncodeToString([]byte(`{"amount":"5","currency":1}`)), 1), payment.ErrMalformedChallenge},
		{"amount not a string", strings.Replace(base, req, paywire.HdrB64.EncodeToString([]byte(`{"amount":5,"currency":"USD"}`)), 1), payment.ErrMalformedChallenge},
		{"bad expires", base + `, expires="tomorrow"`, payment.ErrMalformedChallenge},
		{"bad opaque", base + `, opaque="e30x"`, payment.ErrMalformedChallenge},
		{"opaque with a number", base + `, opaque="` + paywire.HdrB64.EncodeToString([]byte(`{"a":1}`)) + `"`, payment.ErrMalformedChallenge},
		{"missing =", `Payment id "i"`, payment.ErrMalformedChallenge},
		{"garbage after scheme", `Payment/1 x`, payment.ErrMalformedChallenge},
		{"params without values", `Payment id=, realm="r"`, payment.ErrMalformedChallenge},
		{"token68 payment challenge", `Payment abcdef`, payment.ErrMalformedChallenge},
		{"too large", base + `, description="` + strings.Repeat("a", payment.MaxHeaderBytes) + `"`, payment.ErrMalformedChallenge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := payment.ParseChallenges([]string{tc.value})
			if err == nil {
				t.Fatalf("parsed %+v, want error", cs)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %s", err, tc.want.Code)
			}
			var pe *payment.Error
			if !errors.As(err, &pe) || pe.Detail == "" {
				t.Fatalf("err %v is not a detailed *Error", err)
			}
		})
	}
}

func TestFormatChallengeRefuses(t *testing.T) {
	c := sampleChallenge(t)
	for name, mut := range map[string]func(*payment.Challenge){
		"no id":           func(c *payment.Challenge) { c.ID = "" },
		"no realm":        func(c *payment.Challenge) { c.Realm = "" },
		"bad method":      func(c *payment.Challenge) { c.Method = "Agent" },
		"newline":         func(c *payment.Challenge) { c.Description = "a\nb" },
		"too large":       func(c *payment.Challenge) { c.Description = strings.Repeat("x", payment.MaxHeaderBytes) },
		"invalid utf8 op": func(c *payment.Challenge) { c.Opaque = map[string]string{"a": "\xff"} },
	} {
		t.Run(name, func(t *testing.T) {
			cc := *c
			mut(&cc)
			if _, err := payment.FormatChallenge(&cc); !errors.Is(err, payment.ErrMalformedChallenge) {
				t.Fatalf("err = %v, want malformed_challenge", err)
			}
		})
	}
}

func TestChallengeRequestMoney(t *testing.T) {
	good := payment.ChallengeRequest{Amount: "1299", Currency: "USD"}
	m, err := good.Money()
	if err != nil || m.Amount != 1299 || m.Currency != "USD" {
		t.Fatalf("Money() = %v, %v", m, err)
	}
	for _, r := range []payment.ChallengeRequest{
		{Amount: "", Currency: "USD"}, {Amount: "01", Currency: "USD"}, {Amount: "-1", Currency: "USD"},
		{Amount: "1.5", Currency: "USD"}, {Amount: "99999999999999999999", Currency: "USD"},
		{Amount: "9223372036854775808", Currency: "USD"}, {Amount: "1", Currency: "usd"}, {Amount: "1", Currency: "0x20c0"},
	} {
		if _, err := r.Money(); !errors.Is(err, payment.ErrMalformedChallenge) {
			t.Errorf("Money(%+v) err = %v, want malformed_challenge", r, err)
		}
	}
}

func TestCanonicalJSON(t *testing.T) {
	cases := []struct {
		in   string
		want string
	}{
		// Members sorted by UTF-16 code units: U+1F600 (D83D DE00) sorts
		// before U+FB33, although its UTF-8 form sorts after.
		{`{"\ufb33":1,"\ud83d\ude00":2,"b":[true,false,null],"a":"<&>\u2028"}`, "{\"a\":\"<&>\u2028\",\"b\":[true,false,null],\"\U0001F600\":2,\"\ufb33\":1}"},
		{`{"n":[1e21,1e-7,0.000001,333333333.3333333,-0,100,1.5e300,4.5]}`, `{"n":[1e+21,1e-7,0.000001,333333333.3333333,0,100,1.5e+300,4.5]}`},
		{`{"s":"tab\there\u0001\"\\/"}`, `{"s":"tab\there\u0001\"\\/"}`},
	}
	for _, tc := range cases {
		m, err := payment.HdrDecodeObject([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		got, err := paywire.JCSEncode(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("jcs(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
		// The exported entry point is the same canonicalizer.
		if got, err := payment.CanonicalJSON([]byte(tc.in)); err != nil || string(got) != tc.want {
			t.Errorf("CanonicalJSON(%s)\n got %s (%v)\nwant %s", tc.in, got, err, tc.want)
		}
	}
}

// genHeaderText draws strings that a header can carry, biased towards the
// characters that need escaping or could confuse the parser.
func genHeaderText(min int) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		parts := rapid.SliceOfN(rapid.OneOf(
			rapid.SampledFrom([]string{`"`, `\`, `,`, `=`, ` `, "\t", `Payment `, `id="x"`, "é", "☕"}),
			rapid.StringMatching(`[ -~]{0,8}`),
		), min, 12).Draw(t, "parts")
		return strings.Join(parts, "")
	})
}

func TestRapidChallengeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := &payment.Challenge{
			Realm:  genHeaderText(1).Filter(func(s string) bool { return s != "" }).Draw(t, "realm"),
			Method: rapid.StringMatching(`[a-z]{1,12}`).Draw(t, "method"),
			Intent: rapid.SampledFrom([]string{payment.IntentCharge, "session"}).Draw(t, "intent"),
			Request: payment.ChallengeRequest{
				Amount:      rapid.StringMatching(`0|[1-9][0-9]{0,17}`).Draw(t, "amount"),
				Currency:    rapid.StringMatching(`[A-Z]{3}`).Draw(t, "currency"),
				Recipient:   rapid.StringMatching(`[a-z0-9-]{0,10}`).Draw(t, "recipient"),
				Description: genHeaderText(0).Draw(t, "rdesc"),
			},
			Digest:      rapid.SampledFrom([]string{"", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"}).Draw(t, "digest"),
			Description: genHeaderText(0).Draw(t, "desc"),
		}
		if rapid.Bool().Draw(t, "expires") {
			c.Expires = time.Unix(rapid.Int64Range(0, 4e9).Draw(t, "exp"), 0).UTC()
		}
		if rapid.Bool().Draw(t, "opaque") {
			c.Opaque = rapid.MapOf(rapid.StringMatching(`[a-z]{1,5}`), genHeaderText(0)).Draw(t, "opaque")
		}
		id, err := payment.ChallengeID([]byte("rapid-secret-rapid-secret-rapid!"), c)
		if err != nil {
			t.Fatal(err)
		}
		c.ID = id
		v, err := payment.FormatChallenge(c)
		if err != nil {
			t.Fatalf("format: %v", err)
		}
		got, err := payment.ParseChallenges([]string{`Basic realm="x, y", ` + v})
		if err != nil {
			t.Fatalf("parse %q: %v", v, err)
		}
		want := *c
		want.RequestB64, _ = payment.EncodeRequest(c.Request)
		if c.Intent != payment.IntentCharge {
			want.Request = payment.ChallengeRequest{}
		}
		if d := cmp.Diff(want, got[0], challengeCmp); d != "" {
			t.Fatalf("round trip of %q (-want +got):\n%s", v, d)
		}
		e, _ := got[0].Echo()
		if !payment.VerifyEchoID([][]byte{[]byte("rapid-secret-rapid-secret-rapid!")}, &e) {
			t.Fatal("id does not verify after the round trip")
		}
	})
}

func FuzzParseChallenge(f *testing.F) {
	c := sampleChallenge(f)
	v, _ := payment.FormatChallenge(c)
	f.Add(v)
	f.Add(`Bearer realm="a", ` + v + `, Basic abc=`)
	f.Add(`Payment id=a, realm=b, method=agentprov, intent=charge, request=e30`)
	f.Add(`Payment id="a\"b", realm="\\", method="x", intent="y", request="eyJhbW91bnQiOiIxIiwiY3VycmVuY3kiOiJVU0QifQ", opaque="e30"`)
	f.Add(`, ,Payment`)
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := payment.ParseChallenges([]string{s})
		if err != nil {
			var pe *payment.Error
			if !errors.As(err, &pe) || !(errors.Is(err, payment.ErrMalformedChallenge) || errors.Is(err, payment.ErrNoChallenge)) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for _, c := range cs {
			v, err := payment.FormatChallenge(&c)
			if err != nil {
				if strings.Contains(err.Error(), "-byte limit") {
					return // re-encoding may grow a large value over the limit
				}
				t.Fatalf("parsed %+v but cannot format it: %v", c, err)
			}
			again, err := payment.ParseChallenges([]string{v})
			if err != nil {
				t.Fatalf("re-parse %q: %v", v, err)
			}
			if d := cmp.Diff(c, again[0], challengeCmp); d != "" {
				t.Fatalf("round trip (-first +second):\n%s", d)
			}
			e1, _ := c.Echo()
			e2, _ := again[0].Echo()
			if e1 != e2 {
				t.Fatalf("echo changed: %+v vs %+v", e1, e2)
			}
		}
	})
}

// JCS is a canonical form: re-canonicalising its own output changes
// nothing, whatever the member order or number spelling of the input.
func TestRapidCanonicalJSONIdempotent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := map[string]any{}
		for i, n := 0, rapid.IntRange(0, 6).Draw(t, "n"); i < n; i++ {
			k := rapid.String().Draw(t, "key")
			switch rapid.IntRange(0, 3).Draw(t, "kind") {
			case 0:
				m[k] = rapid.String().Draw(t, "s")
			case 1:
				m[k] = rapid.Float64().Draw(t, "f")
			case 2:
				m[k] = rapid.Int64Range(-1<<53, 1<<53).Draw(t, "i")
			default:
				m[k] = map[string]any{rapid.String().Draw(t, "k2"): rapid.Bool().Draw(t, "b")}
			}
		}
		once, err := paywire.JCSEncode(m)
		if err != nil {
			t.Skip("not representable") // NaN, ±Inf or invalid UTF-8
		}
		back, err := payment.HdrDecodeObject(once)
		if err != nil {
			t.Fatalf("JCS output %s is not JSON: %v", once, err)
		}
		twice, err := paywire.JCSEncode(back)
		if err != nil || string(twice) != string(once) {
			t.Fatalf("not idempotent:\n%s\n%s (%v)", once, twice, err)
		}
	})
}

package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/activation"
)

// millisCases is the contract of parseMillis: the query and bound, and
// what must come out. Both TestParseMillis and FuzzParseMillis use it.
var millisCases = []struct {
	query string
	max   int
	want  time.Duration
	ok    bool
}{
	{"ms=0", maxSleepMillis, 0, true},
	{"ms=1", maxSleepMillis, time.Millisecond, true},
	{"ms=250", maxWorkMillis, 250 * time.Millisecond, true},
	{"ms=007", maxWorkMillis, 7 * time.Millisecond, true},
	{"ms=10000", maxWorkMillis, 10 * time.Second, true},
	{"ms=60000", maxSleepMillis, time.Minute, true},
	{"ms=5&other=x", maxSleepMillis, 5 * time.Millisecond, true},
	{"", maxSleepMillis, 0, false},
	{"other=5", maxSleepMillis, 0, false},
	{"MS=5", maxSleepMillis, 0, false},
	{"ms", maxSleepMillis, 0, false},
	{"ms=", maxSleepMillis, 0, false},
	{"ms=abc", maxSleepMillis, 0, false},
	{"ms=-1", maxSleepMillis, 0, false},
	{"ms=-0", maxSleepMillis, 0, false},
	{"ms=-", maxSleepMillis, 0, false},
	{"ms=%2B5", maxSleepMillis, 0, false}, // +5
	{"ms=+5", maxSleepMillis, 0, false},   // a space and 5
	{"ms=1e3", maxSleepMillis, 0, false},
	{"ms=1.5", maxSleepMillis, 0, false},
	{"ms=0x10", maxSleepMillis, 0, false},
	{"ms=1_000", maxSleepMillis, 0, false},
	{"ms=%205", maxSleepMillis, 0, false},
	{"ms=5%20", maxSleepMillis, 0, false},
	{"ms=5%0A", maxSleepMillis, 0, false},
	{"ms=%D9%A5", maxSleepMillis, 0, false}, // Arabic-Indic digit five
	{"ms=10001", maxWorkMillis, 0, false},
	{"ms=60001", maxSleepMillis, 0, false},
	{"ms=99999999999999999999999", maxSleepMillis, 0, false},
	{"ms=1&ms=2", maxSleepMillis, 0, false},
	{"ms=1&ms=1", maxSleepMillis, 0, false},
	{"ms=&ms=1", maxSleepMillis, 0, false},
}

// TestParseMillis checks every case of the table, and that errors are one
// line naming the allowed range.
func TestParseMillis(t *testing.T) {
	for _, c := range millisCases {
		values, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatalf("bad test query %q: %v", c.query, err)
		}
		got, err := parseMillis(values, c.max)
		if c.ok {
			if err != nil || got != c.want {
				t.Errorf("parseMillis(%q, %d) = %v, %v; want %v, nil", c.query, c.max, got, err, c.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("parseMillis(%q, %d) = %v, nil; want an error", c.query, c.max, got)
			continue
		}
		checkMessage(t, err.Error(), c.max)
	}
}

// checkMessage fails t unless msg is one line stating the range 0..max.
func checkMessage(t *testing.T, msg string, max int) {
	t.Helper()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error %q spans several lines", msg)
	}
	if want := "from 0 to " + strconv.Itoa(max); !strings.Contains(msg, want) {
		t.Errorf("error %q does not say %q", msg, want)
	}
}

// FuzzParseMillis parses arbitrary query strings and checks that
// parseMillis accepts exactly one ms value of ASCII digits within the
// bound, returns that many milliseconds, and otherwise fails cleanly.
func FuzzParseMillis(f *testing.F) {
	for _, c := range millisCases {
		f.Add(c.query, c.max)
	}
	f.Fuzz(func(t *testing.T, query string, max int) {
		if max < 0 || max > maxSleepMillis {
			max = maxSleepMillis
		}
		values, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		got, err := parseMillis(values, max)
		want, ok := oracleMillis(values, max)
		if ok != (err == nil) || got != want {
			t.Fatalf("parseMillis(%q, %d) = %v, %v; want %v, ok=%v", query, max, got, err, want, ok)
		}
		if err != nil {
			checkMessage(t, err.Error(), max)
		}
	})
}

// oracleMillis is parseMillis written differently, byte by byte, as the
// fuzz test's reference.
func oracleMillis(values url.Values, max int) (time.Duration, bool) {
	vs := values["ms"]
	if len(vs) != 1 || vs[0] == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(vs[0]); i++ {
		c := vs[0][i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > max {
			return 0, false
		}
	}
	return time.Duration(n) * time.Millisecond, true
}

// newTestInstance returns an instance named "test-1" that logs nowhere.
func newTestInstance(t *testing.T, opts ...activation.Option) *activation.Instance {
	t.Helper()
	t.Setenv("INSTANCE", "test-1")
	t.Setenv("NOTIFY_SOCKET", "")
	opts = append(opts, activation.WithLogger(slog.New(slog.DiscardHandler)))
	inst, err := activation.New(opts...)
	if err != nil {
		t.Fatalf("activation.New: %v", err)
	}
	return inst
}

// newTestMux returns the app's handler on a fresh instance and registry.
func newTestMux(t *testing.T) http.Handler {
	t.Helper()
	inst := newTestInstance(t)
	m, err := newMetrics(inst)
	if err != nil {
		t.Fatalf("newMetrics: %v", err)
	}
	return newMux(inst, m)
}

// TestMux sends requests through the app's handler, in order, and checks
// status, body and headers; X-Instance and X-Version must be on every
// response.
func TestMux(t *testing.T) {
	h := newTestMux(t)
	tests := []struct {
		method, target string
		code           int
		body           string // substring of the body
		allow          string // Allow header, for 405
	}{
		{"GET", "/", 200, "hello from instance test-1\n", ""},
		{"HEAD", "/", 200, "", ""},
		{"POST", "/", 200, "hello from instance test-1\n", ""},
		{"DELETE", "/", 405, "method DELETE not allowed", "GET, HEAD, POST"},
		{"GET", "/version", 200, version + "\n", ""},
		{"POST", "/version", 405, "", "GET, HEAD"},
		{"GET", "/nope", 404, "not found", ""},
		{"GET", "/work?ms=1", 200, "worked ", ""},
		{"GET", "/sleep?ms=1", 200, "slept ", ""},
		{"GET", "/work", 400, "missing query parameter ms", ""},
		{"GET", "/work?ms=", 400, "is empty", ""},
		{"GET", "/work?ms=10001", 400, "too large: want ms=N with N a whole number of milliseconds from 0 to 10000", ""},
		{"GET", "/sleep?ms=60001", 400, "from 0 to 60000", ""},
		{"GET", "/sleep?ms=-5", 400, "negative", ""},
		{"GET", "/sleep?ms=1e3", 400, "not a plain decimal number", ""},
		{"GET", "/sleep?ms=1&ms=2", 400, "given 2 times", ""},
		{"GET", "/sleep?ms=%zz", 400, "malformed query string", ""},
		{"PUT", "/sleep?ms=1", 405, "", "GET, HEAD, POST"},
		{"GET", "/metrics", 200, "app_requests_total", ""},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.target, nil))
		name := tt.method + " " + tt.target
		if w.Code != tt.code {
			t.Errorf("%s: status %d, want %d (body %q)", name, w.Code, tt.code, w.Body)
		}
		if !strings.Contains(w.Body.String(), tt.body) {
			t.Errorf("%s: body %q does not contain %q", name, w.Body, tt.body)
		}
		if got := w.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s: Allow %q, want %q", name, got, tt.allow)
		}
		if got := w.Header().Get("X-Instance"); got != "test-1" {
			t.Errorf("%s: X-Instance %q, want test-1", name, got)
		}
		if got := w.Header().Get("X-Version"); got != version {
			t.Errorf("%s: X-Version %q, want %q", name, got, version)
		}
	}
}

// TestMetrics checks that /metrics lists every app metric and counts
// requests by route and code, with unknown paths as "other".
func TestMetrics(t *testing.T) {
	h := newTestMux(t)
	for _, target := range []string{"/", "/", "/work?ms=x", "/a", "/b"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body := w.Body.String()
	for _, want := range []string{
		"app_requests_total 0\n", // only Serve counts; not called here
		"app_requests_in_flight 0\n",
		`app_http_requests_total{code="200",path="/"} 2` + "\n",
		`app_http_requests_total{code="400",path="/work"} 1` + "\n",
		`app_http_requests_total{code="404",path="other"} 2` + "\n",
		"process_cpu_seconds_total",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q, want text/plain", ct)
	}
}

// TestStopsEarly checks that /work and /sleep give up as soon as the
// request's context is done, even when asked for the maximum.
func TestStopsEarly(t *testing.T) {
	h := newTestMux(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, target := range []string{"/work?ms=10000", "/sleep?ms=60000"} {
		start := time.Now()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil).WithContext(ctx))
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s with a cancelled context took %v", target, d)
		}
		if w.Code != http.StatusOK {
			t.Errorf("%s: status %d, want 200", target, w.Code)
		}
	}
}

// TestServe runs the handler on a real instance and checks that the
// instance answers /healthz itself and that app_requests_total counts
// served requests.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	inst := newTestInstance(t, activation.WithListeners(ln), activation.WithoutSignals())
	m, err := newMetrics(inst)
	if err != nil {
		t.Fatalf("newMetrics: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inst.Serve(ctx, newMux(inst, m)) }()
	base := "http://" + ln.Addr().String()
	waitReady(t, base+"/readyz")
	if body := get(t, base+"/healthz"); !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("/healthz: %q", body)
	}
	get(t, base+"/")
	if body := get(t, base+"/metrics"); !strings.Contains(body, "app_requests_total 1\n") {
		t.Errorf("/metrics after one request lacks app_requests_total 1:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// noKeepAlive is a client that closes each connection after its request,
// so that stopping the instance need not wait for idle connections.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// waitReady polls the readiness url for up to five seconds until it
// answers 200.
func waitReady(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		resp, err := noKeepAlive.Get(url)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
	}
	t.Fatalf("%s never answered 200", url)
}

// get fetches url and returns the body, failing t unless the status is 200.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := noKeepAlive.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(body)
}

func TestParseFault(t *testing.T) {
	for _, tc := range []struct {
		v       string
		want    fault
		wantErr bool
	}{
		{"", faultNone, false},
		{"fail-start", faultFailStart, false},
		{"wedge", faultWedge, false},
		{"grow", faultGrow, false},
		{"Wedge", "", true},
		{"crash", "", true},
	} {
		got, err := parseFault(tc.v)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parseFault(%q) = %q, %v", tc.v, got, err)
		}
	}
}

// A wedged handler lets no later request through.
func TestWedgeable(t *testing.T) {
	h := wedgeable("1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/debug/wedge", nil))
	if rec.Code != 200 || rec.Header().Get("X-Instance") != "1" {
		t.Fatalf("POST /debug/wedge: %d %v", rec.Code, rec.Header())
	}
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("a request got through a wedged handler")
	case <-time.After(100 * time.Millisecond):
	}
}

// POST /debug/grow?mb=N makes the instance N MiB bigger; anything else
// about /debug/grow is refused, and other paths pass through.
func TestGrowable(t *testing.T) {
	h := growable("1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeText(w, "next\n") }))
	for _, tc := range []struct {
		method, target string
		code           int
		body           string
	}{
		{"GET", "/", 200, "next\n"},
		{"GET", "/debug/grow?mb=1", 405, "use POST"},
		{"PUT", "/debug/grow?mb=1", 405, "use POST"},
		{"POST", "/debug/grow", 400, "missing query parameter mb: want ?mb=N with N a whole number of MiB from 1 to 4096"},
		{"POST", "/debug/grow?mb=", 400, "from 1 to 4096"},
		{"POST", "/debug/grow?mb=0", 400, "from 1 to 4096"},
		{"POST", "/debug/grow?mb=4097", 400, "from 1 to 4096"},
		{"POST", "/debug/grow?mb=-1", 400, "from 1 to 4096"},
		{"POST", "/debug/grow?mb=%2B1", 400, "from 1 to 4096"},
		{"POST", "/debug/grow?mb=1.5", 400, "from 1 to 4096"},
		{"POST", "/debug/grow?mb=1&mb=2", 400, "given 2 times"},
		{"POST", "/debug/grow?mb=%zz", 400, "malformed query string"},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.target, nil))
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.body) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.target, w.Code, w.Body, tc.code, tc.body)
		}
		if w.Code == 405 && w.Header().Get("Allow") != "POST" {
			t.Errorf("%s %s: Allow %q, want POST", tc.method, tc.target, w.Header().Get("Allow"))
		}
	}

	before, err := residentMemory()
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/debug/grow?mb=16", nil))
	if w.Code != 200 || w.Header().Get("X-Instance") != "1" || !strings.HasPrefix(w.Body.String(), "instance 1 grew by 16 MiB, rss now ") {
		t.Fatalf("POST /debug/grow?mb=16: %d %q, X-Instance %q", w.Code, w.Body, w.Header().Get("X-Instance"))
	}
	after, err := residentMemory()
	if err != nil {
		t.Fatal(err)
	}
	// At least most of it: the allocation may reuse a little heap that
	// was resident already.
	if grew := after - before; grew < 12<<20 {
		t.Errorf("rss grew by %d MiB (%d to %d), want about 16", grew>>20, before>>20, after>>20)
	}
}

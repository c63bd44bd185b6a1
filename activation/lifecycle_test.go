package activation_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A socket-activated worker serves the passed socket and walks through
// READY → RELOADING → READY → STOPPING, exiting 0.
func TestSocketActivatedLifecycle(t *testing.T) {
	f, addr := tcpSocket(t)
	w := startWorker(t, workerSpec{files: []*os.File{f}, names: []string{"app.socket"}, env: []string{"INSTANCE=7"}})
	w.rec.waitCount(t, "READY=1", 1, 10*time.Second)

	resp, body := get(t, "http://"+addr+"/")
	if resp.StatusCode != 200 || body != "ok\n" || resp.Header.Get("X-Instance") != "7" {
		t.Fatalf("GET /: %s %q X-Instance=%q", resp.Status, body, resp.Header.Get("X-Instance"))
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id in the response")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, body := get(t, "http://"+addr+path)
		var rep struct{ Status, State, Instance string }
		if err := json.Unmarshal([]byte(body), &rep); err != nil || resp.StatusCode != 200 || rep.Status != "ok" || rep.Instance != "7" {
			t.Errorf("GET %s: %s %q", path, resp.Status, body)
		}
	}

	w.signal(t, syscall.SIGHUP)
	w.rec.waitCount(t, "READY=1", 2, 10*time.Second)
	w.signal(t, syscall.SIGTERM)
	if code := w.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	assertOrder(t, w.rec.lines(), "READY=1", "RELOADING=1", "READY=1", "STOPPING=1")
	if !slices.ContainsFunc(w.rec.lines(), func(l string) bool { return strings.HasPrefix(l, "EXTEND_TIMEOUT_USEC=") }) {
		t.Error("no EXTEND_TIMEOUT_USEC= during the drain")
	}
	if !slices.ContainsFunc(w.rec.lines(), func(l string) bool { return strings.HasPrefix(l, "STATUS=ready: ") }) {
		t.Errorf("no STATUS=ready line in %q", w.rec.lines())
	}
}

// A failing reload hook is reported in STATUS= and the worker keeps serving.
func TestReloadFailureKeepsServing(t *testing.T) {
	f, addr := tcpSocket(t)
	w := startWorker(t, workerSpec{files: []*os.File{f}, names: []string{"app.socket"}, env: []string{"WORKER_RELOAD_FAIL=1"}})
	w.rec.waitCount(t, "READY=1", 1, 10*time.Second)
	w.signal(t, syscall.SIGHUP)
	w.rec.waitCount(t, "READY=1", 2, 10*time.Second)
	if !slices.ContainsFunc(w.rec.lines(), func(l string) bool {
		return strings.HasPrefix(l, "STATUS=reload failed: config file is broken")
	}) {
		t.Errorf("no reload failure in STATUS=: %q", w.rec.lines())
	}
	if resp, _ := get(t, "http://"+addr+"/"); resp.StatusCode != 200 {
		t.Fatalf("GET / after a failed reload: %s", resp.Status)
	}
}

// With several sockets passed, the worker serves the one it names and fails
// clearly when it names none or a missing one.
func TestListenerByName(t *testing.T) {
	admin, _ := tcpSocket(t)
	app, appAddr := tcpSocket(t)
	files, names := []*os.File{admin, app}, []string{"admin.socket", "app.socket"}

	w := startWorker(t, workerSpec{files: files, names: names, env: []string{"WORKER_LISTENER=app.socket"}})
	w.rec.waitCount(t, "READY=1", 1, 10*time.Second)
	if resp, _ := get(t, "http://"+appAddr+"/"); resp.StatusCode != 200 {
		t.Fatalf("GET / on app.socket: %s", resp.Status)
	}
	w.signal(t, syscall.SIGTERM)
	w.wait(t, 10*time.Second)

	for _, tc := range []struct{ env, want string }{
		{"WORKER_LISTENER=", "choose one by name"},
		{"WORKER_LISTENER=web.socket", `no socket named "web.socket"`},
	} {
		w := startWorker(t, workerSpec{files: files, names: names, env: []string{tc.env}})
		if code := w.wait(t, 10*time.Second); code == 0 || !strings.Contains(w.stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want failure mentioning %q", tc.env, code, w.stderr.String(), tc.want)
		}
		if w.rec.count("READY=1") != 0 {
			t.Errorf("%s: worker sent READY=1 without a listener", tc.env)
		}
	}
}

// A worker whose serving path is wedged stops accepting new connections at
// once and says so in STATUS=, stops pinging the watchdog, and its
// liveness probe says why on a connection it had accepted before, while a
// healthy one keeps pinging.
func TestWedgedWorkerStopsWatchdog(t *testing.T) {
	f, addr := tcpSocket(t)
	const period = 400 * time.Millisecond // health is checked every period/4
	w := startWorker(t, workerSpec{files: []*os.File{f}, names: []string{"app.socket"}, watchdog: period})
	w.rec.waitCount(t, "READY=1", 1, 10*time.Second)
	w.rec.waitCount(t, "WATCHDOG=1", 3, 10*time.Second)

	// One keep-alive connection, accepted before the wedge, carries every
	// request: the wedged worker accepts no new one.
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	for _, path := range []string{"/healthz", "/wedge"} {
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	w.waitLog(t, "stopped accepting new connections", 10*time.Second)
	w.rec.waitPrefix(t, "STATUS=ready: ", "not accepting new connections: canary stuck for", 10*time.Second)
	time.Sleep(period) // a canary already past the mutex may still ping once
	before := w.rec.count("WATCHDOG=1")
	time.Sleep(3 * period)
	if after := w.rec.count("WATCHDOG=1"); after != before {
		t.Fatalf("wedged worker pinged the watchdog %d more times", after-before)
	}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "canary") {
		t.Fatalf("GET /healthz on a wedged worker: %s %q", resp.Status, body)
	}

	// Stopped while wedged with a request stuck in the handler, it cuts
	// its drain off once the canary has been out for the watchdog period
	// (systemd no longer watches a stopping instance), not after the 30 s
	// drain timeout.
	go func() {
		if resp, err := c.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	w.rec.waitPrefix(t, "STATUS=", "1 in flight", 10*time.Second)
	start := time.Now()
	w.signal(t, syscall.SIGTERM)
	if code := w.wait(t, 20*time.Second); code == 0 {
		t.Errorf("a wedged worker that cut its drain off exited 0")
	}
	w.waitLog(t, "serving path stuck", time.Second)
	t.Logf("wedged worker stopped in %s", time.Since(start).Round(time.Millisecond))
}

// assertOrder checks that want appears in got as a subsequence.
func assertOrder(t *testing.T, got []string, want ...string) {
	t.Helper()
	k := 0
	for _, l := range got {
		if k < len(want) && l == want[k] {
			k++
		}
	}
	if k != len(want) {
		t.Fatalf("notifications %q do not contain %q in order", got, want)
	}
}

// A failed warm-up never reports READY=1 and exits non-zero, saying why.
func TestWarmupFailureIsNotReady(t *testing.T) {
	f, _ := tcpSocket(t)
	w := startWorker(t, workerSpec{files: []*os.File{f}, names: []string{"app.socket"}, env: []string{"WORKER_WARMUP_FAIL=1"}})
	if code := w.wait(t, 10*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if w.rec.count("READY=1") != 0 {
		t.Fatal("READY=1 sent although warm-up failed")
	}
	if !slices.Contains(w.rec.lines(), "STATUS=warm-up failed: cache is cold") {
		t.Fatalf("no warm-up failure in STATUS=: %q", w.rec.lines())
	}
}

// Bad environment stops the worker before it listens, naming the variable.
func TestBadEnvironmentIsRejected(t *testing.T) {
	for _, env := range []string{"DRAIN_TIMEOUT=forever", "LOG_LEVEL=loud", "INSTANCE=a b", "PORT=99999",
		"ACCEPT_MODE=fast", "KEEPALIVE_REQUESTS=-1", "KEEPALIVE_TIME=forever"} {
		w := startWorker(t, workerSpec{env: []string{env}})
		name := strings.SplitN(env, "=", 2)[0]
		if code := w.wait(t, 10*time.Second); code == 0 || !strings.Contains(w.stderr.String(), name) {
			t.Errorf("%s: exit %d, stderr %q", env, code, w.stderr.String())
		}
	}
}

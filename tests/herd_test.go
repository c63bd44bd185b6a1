package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
	"github.com/unitkit/unitkit/tests/install"
	"github.com/unitkit/unitkit/tests/sandbox"
)

// binDir holds app and appctl, built once for all scenarios, and
// packageCache the packages built for them; TestMain removes both.
var binDir, packageCache string

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "unitkit-tests")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binDir, packageCache = filepath.Join(dir, "bin"), dir
	if err := os.Mkdir(binDir, 0o755); err != nil {
		return 0, err
	}
	for bin, pkg := range map[string]string{filepath.Join(binDir, "app"): "../cmd/app", filepath.Join(binDir, "appctl"): "../cmd/appctl"} {
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=test", "-o", bin, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("build %s: %w\n%s", pkg, err, out)
		}
	}
	return m.Run(), nil
}

// herd is a sandbox with the units and app installed and app.socket
// started.
type herd struct {
	t *testing.T
	s *sandbox.Sandbox
}

// dropIn is a unit drop-in: the unit (e.g. "app@.service" or
// "app@4.service") and the file's content.
type dropIn struct{ unit, name, content string }

// newHerd boots a sandbox and installs the herd the way the package does
// (package install), with the drop-ins in place before systemd reads the
// units.
func newHerd(t *testing.T, dropIns ...dropIn) *herd {
	t.Helper()
	h := &herd{t: t, s: sandbox.New(t)}
	for _, d := range dropIns {
		h.must(h.s.WriteFile("/etc/systemd/system/"+d.unit+".d/"+d.name+".conf", []byte(d.content), 0o644))
	}
	h.must(install.Herd(t.Context(), h.s, binDir, filepath.Join("..", "unit")))
	return h
}

func (h *herd) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// systemctl runs systemctl in the sandbox and fails the test if it fails.
func (h *herd) systemctl(args ...string) string {
	h.t.Helper()
	return h.s.MustRun(h.t, append([]string{"systemctl"}, args...)...)
}

// appctl runs appctl in the sandbox and returns its output and exit code.
func (h *herd) appctl(args ...string) (string, int) {
	h.t.Helper()
	return h.run(append([]string{"appctl"}, args...)...)
}

// run runs a command in the sandbox and returns its combined output and
// exit code.
func (h *herd) run(args ...string) (string, int) {
	h.t.Helper()
	cmd := h.s.Command(context.Background(), args...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	h.t.Fatalf("%v: %v", args, err)
	return "", -1
}

// instances returns app@1.service … app@n.service.
func instances(from, to int) []string {
	var units []string
	for i := from; i <= to; i++ {
		units = append(units, fmt.Sprintf("app@%d.service", i))
	}
	return units
}

// show returns properties of a unit.
func (h *herd) show(unit string, props ...string) map[string]string {
	h.t.Helper()
	args := []string{"show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out := h.systemctl(args...)
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// load starts a load generator against the socket, inside the sandbox's
// network.
func (h *herd) load(keepAlive bool) *loadtest.Load {
	return loadtest.New(loadtest.Config{URL: "http://127.0.0.1:8080", Dial: h.s.DialContext, KeepAlive: keepAlive})
}

// waitFor polls cond until it holds or timeout passes, and returns how long
// it took.
func (h *herd) waitFor(what string, timeout time.Duration, cond func() bool) time.Duration {
	h.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			h.t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// watchSocket samples app.socket's state until the returned function is
// called, which reports every sample where it was not listening or running.
func (h *herd) watchSocket() (stop func() []string) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu  sync.Mutex
		bad []string
		wg  sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			out, err := h.s.Run(ctx, "systemctl", "show", "app.socket", "-p", "ActiveState", "-p", "SubState")
			state := strings.Join(strings.Fields(out), " ")
			if err == nil && state != "ActiveState=active SubState=listening" && state != "ActiveState=active SubState=running" {
				mu.Lock()
				bad = append(bad, time.Now().Format("15:04:05.000")+" "+state)
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() []string {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return bad
	}
}

// checkLoad fails the test if the load saw more than allowed failures or
// answers from fewer than wantInstances instances, and logs its figures.
func checkLoad(t *testing.T, what string, r loadtest.Result, allowed int64) {
	t.Helper()
	t.Logf("%s: %d requests, %d failed, max latency %s, per instance %v",
		what, r.Total, r.Failed, r.MaxLatency.Round(time.Millisecond), r.ByInstance)
	if r.Total == 0 {
		t.Errorf("%s: no requests completed", what)
	}
	if r.Failed > allowed {
		for _, e := range r.Errors {
			t.Log(e)
		}
		t.Errorf("%s: %d requests failed, at most %d allowed", what, r.Failed, allowed)
	}
}

// lockedWriter collects output written from another goroutine.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// waitJournal waits until unit's "ready" record carries field (as
// NAME=value), and fails the test after 10 s.
func (h *herd) waitJournal(unit, field string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		export := h.s.Journal("-u", unit, "-o", "export", "MESSAGE=ready")
		if strings.Contains(export, "\n"+field+"\n") {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s logged no ready record with %s within 10s:\n%s", unit, field, export)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkServes checks that requests to port are answered by exactly the
// instances want.
func (h *herd) checkServes(port string, want []string) {
	h.t.Helper()
	seen := map[string]bool{}
	client := h.s.HTTPClient(false)
	for range 200 {
		resp, err := client.Get("http://127.0.0.1:" + port + "/")
		if err != nil {
			h.t.Fatalf("GET :%s: %v", port, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen[resp.Header.Get("X-Instance")] = true
	}
	var got []string
	for k := range seen {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		h.t.Errorf("port %s answered by instances %q, want %q", port, got, want)
	}
}

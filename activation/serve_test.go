package activation_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitkit/unitkit/activation"
)

// Outside systemd, Listeners opens its own socket at $LISTEN_ADDR.
func TestListenersWithoutSystemd(t *testing.T) {
	t.Setenv("LISTEN_FDS", "")
	t.Setenv("LISTEN_ADDR", "127.0.0.1:0")
	lns, activated, err := activation.Listeners(context.Background(), "", "")
	if err != nil || activated || len(lns) != 1 {
		t.Fatalf("got %v, %v, %v", lns, activated, err)
	}
	defer lns[0].Close()
	if !strings.HasPrefix(lns[0].Addr().String(), "127.0.0.1:") {
		t.Fatalf("listening on %s", lns[0].Addr())
	}
}

// Serve on given listeners stops when its context ends and returns nil after
// a clean drain; a request arriving after the probes ran is counted.
func TestServeInProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := activation.New(activation.WithListeners(ln), activation.WithoutSignals(),
		activation.WithNotifier(activation.NewNotifierFor("")))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- inst.Serve(ctx, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	}()
	url := "http://" + ln.Addr().String()
	waitReady(t, inst)
	resp, body := get(t, url+"/readyz")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /readyz: %s %s", resp.Status, body)
	}
	if resp, _ := get(t, url+"/"); resp.StatusCode != 200 {
		t.Fatalf("GET /: %s", resp.Status)
	}
	if got := inst.Stats().Served; got != 1 {
		t.Errorf("served %d requests, want 1 (probes are not counted)", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if err := inst.Serve(context.Background(), http.NotFoundHandler()); err == nil {
		t.Error("second Serve did not fail")
	}
}

// Invalid options are rejected by New with a message naming them.
func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		opt  activation.Option
		want string
	}{
		{activation.WithAddr("nowhere"), "nowhere"},
		{activation.WithListenerName(""), "listener name"},
		{activation.WithCanaryPath("healthz"), "must start with /"},
		{activation.WithHealthPaths("/h", "r"), "must start with /"},
		{activation.WithDrainTimeout(0), "drain timeout"},
		{activation.WithStatusInterval(time.Millisecond), "status interval"},
		{activation.WithHealthInterval(0), "health interval"},
		{activation.WithCanaryInterval(time.Millisecond), "canary interval"},
		{activation.WithListeners(), "at least one"},
		{activation.WithHealthCheck("", nil), "name"},
		{activation.WithKeepAliveLimits(-1, 0), "keep-alive"},
		{activation.WithKeepAliveLimits(0, -time.Second), "keep-alive"},
	} {
		if _, err := activation.New(tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want error containing %q", err, tc.want)
		}
	}
}

// A failing health check turns /readyz to 503 and back to 200 once it
// passes again, while /healthz (liveness, the canary alone) stays 200, also
// when the handler mounts Healthz at the canary's path itself.
func TestHealthCheckRecovers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	inst, err := activation.New(activation.WithListeners(ln), activation.WithoutSignals(),
		activation.WithNotifier(activation.NewNotifierFor("")),
		activation.WithHealthInterval(20*time.Millisecond),
		activation.WithHealthCheck("database", func(context.Context) error {
			if failing.Load() {
				return errors.New("connection refused")
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", inst.Healthz())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = inst.Serve(ctx, mux) }()
	url := "http://" + ln.Addr().String()
	waitStatus := func(path string, code int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, body := get(t, url+path)
			if resp.StatusCode == code {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %s %s, want %d", path, resp.Status, body, code)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitStatus("/healthz", 200)
	failing.Store(true)
	waitStatus("/readyz", 503)
	if resp, body := get(t, url+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("GET /healthz while a check fails: %s %s, want 200", resp.Status, body)
	}
	failing.Store(false)
	waitStatus("/readyz", 200)
	waitStatus("/healthz", 200)
}

package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// mapEnv is an environment made of a map.
func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// TestParseMetricsConfig is the contract of $METRICS_PORT_BASE,
// $METRICS_HOST and $INSTANCE: the address wanted, or an error naming the
// variable at fault.
func TestParseMetricsConfig(t *testing.T) {
	tests := []struct {
		base, inst, host string
		addr             string // "" when off
		err              string // substring of the error; "" for none
	}{
		{"", "3", "", "", ""},
		{"", "blue", "", "", ""}, // off: INSTANCE may be anything
		{"18000", "3", "", ":18003", ""},
		{"18000", "1", "127.0.0.1", "127.0.0.1:18001", ""},
		{"18000", "12", "::1", "[::1]:18012", ""},
		{"18000", "2", "localhost", "localhost:18002", ""},
		{"0", "1", "", ":1", ""},
		{"65534", "1", "", ":65535", ""},
		{"65000", "535", "", ":65535", ""},
		{"65000", "536", "", "", "METRICS_PORT_BASE=65000 + INSTANCE=536 = 65536 is above the highest port 65535"},
		{"65535", "1", "", "", "METRICS_PORT_BASE=\"65535\": want a whole number from 0 to 65534"},
		{"abc", "1", "", "", "METRICS_PORT_BASE=\"abc\": want a whole number"},
		{"-1", "1", "", "", "METRICS_PORT_BASE=\"-1\""},
		{"+18000", "1", "", "", "METRICS_PORT_BASE=\"+18000\""},
		{" 18000", "1", "", "", "METRICS_PORT_BASE"},
		{"1e4", "1", "", "", "not a whole number"},
		{"99999999999999999999", "1", "", "", "too large"},
		{"18000", "blue", "", "", "INSTANCE=\"blue\": METRICS_PORT_BASE is set"},
		{"18000", "", "", "", "INSTANCE=\"\""},
		{"18000", "0", "", "", "INSTANCE=\"0\""},
		{"18000", "03", "", "", "INSTANCE=\"03\""},
		{"18000", "-3", "", "", "INSTANCE=\"-3\""},
		{"18000", "3", "127.0.0.1:9", "", "METRICS_HOST=\"127.0.0.1:9\": want an address without a port"},
		{"18000", "3", "[::1]", "", "METRICS_HOST"},
		{"18000", "3", "a b", "", "METRICS_HOST"},
		// Found by FuzzMetricsConfig: a zone was refused as a port, and
		// hosts that cannot be listened on were taken.
		{"18000", "1", "fe80::1%eth0", "[fe80::1%eth0]:18001", ""},
		{"18000", "2", "localhost.", "localhost.:18002", ""},
		{"18000", "2", "a\x00b", "", "METRICS_HOST"},
		{"18000", "2", "a;b", "", "METRICS_HOST"},
		{"18000", "2", "héllo", "", "METRICS_HOST"},
	}
	for _, tt := range tests {
		env := map[string]string{"INSTANCE": tt.inst, "METRICS_HOST": tt.host}
		if tt.base != "" {
			env["METRICS_PORT_BASE"] = tt.base
		}
		cfg, err := parseMetricsConfig(mapEnv(env))
		name := "base=" + tt.base + " instance=" + tt.inst + " host=" + tt.host
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want one containing %q", name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := ""
		if cfg.on() {
			got = cfg.addr()
		}
		if got != tt.addr {
			t.Errorf("%s: address %q, want %q", name, got, tt.addr)
		}
	}
}

// TestMetricsListener checks that instance N serves /metrics, and only
// that, on METRICS_PORT_BASE+N, and that closing the listener frees the
// port.
func TestMetricsListener(t *testing.T) {
	port := freePort(t)
	inst := newTestInstance(t)
	m, err := newMetrics(inst)
	if err != nil {
		t.Fatalf("newMetrics: %v", err)
	}
	cfg, err := parseMetricsConfig(mapEnv(map[string]string{
		"METRICS_PORT_BASE": strconv.Itoa(port - 7), "INSTANCE": "7", "METRICS_HOST": "127.0.0.1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := listenMetrics(cfg, inst, m)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if body := get(t, base+"/metrics"); !strings.Contains(body, "app_requests_total") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics on port %d lacks the app's metrics:\n%s", port, body)
	}
	for target, want := range map[string]int{"/": 404, "/healthz": 404, "/work?ms=1": 404} {
		if code := status(t, http.MethodGet, base+target); code != want {
			t.Errorf("GET %s on the metrics port: %d, want %d", target, code, want)
		}
	}
	if code := status(t, http.MethodPost, base+"/metrics"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want 405", code)
	}
	if err := ms.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port %d still taken after Close: %v", port, err)
	}
	ln.Close()
}

// TestMetricsListenerBusyPort checks that a port already taken fails the
// start with an error naming the address.
func TestMetricsListenerBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	inst := newTestInstance(t)
	m, err := newMetrics(inst)
	if err != nil {
		t.Fatal(err)
	}
	cfg := metricsConfig{host: "127.0.0.1", port: ln.Addr().(*net.TCPAddr).Port}
	if _, err := listenMetrics(cfg, inst, m); err == nil || !strings.Contains(err.Error(), cfg.addr()) {
		t.Errorf("listen on a taken port: %v, want an error naming %s", err, cfg.addr())
	}
}

// TestRunBadMetricsConfig checks that a bad $METRICS_PORT_BASE stops the
// app before it serves, with exit status 1 and the reason on stderr.
func TestRunBadMetricsConfig(t *testing.T) {
	t.Setenv("METRICS_PORT_BASE", "65535")
	t.Setenv("INSTANCE", "1")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), nil, &stdout, &stderr)
	if got := exitCode(err); got != 1 {
		t.Errorf("exit %d (%v), want 1", got, err)
	}
	if msg := stderr.String(); !strings.HasPrefix(msg, "app: METRICS_PORT_BASE=") || strings.Count(msg, "\n") != 1 {
		t.Errorf("stderr %q, want one line app: METRICS_PORT_BASE=...", msg)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// status sends a request without a body and returns the status code.
func status(t *testing.T, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

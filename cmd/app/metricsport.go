package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"time"

	"github.com/unitkit/unitkit/activation"
)

// maxPort is the highest TCP port.
const maxPort = 65535

// metricsConfig is where an instance serves its own /metrics, apart from
// the shared socket: set by $METRICS_PORT_BASE, $METRICS_HOST and
// $INSTANCE.
type metricsConfig struct {
	host string // "" for all addresses
	port int    // 0 when the listener is off
}

// on reports whether the per-instance listener is wanted.
func (c metricsConfig) on() bool { return c.port != 0 }

// addr is the address to listen on, e.g. "127.0.0.1:18003" or ":18003".
func (c metricsConfig) addr() string { return net.JoinHostPort(c.host, strconv.Itoa(c.port)) }

// parseMetricsConfig reads $METRICS_PORT_BASE, $METRICS_HOST and
// $INSTANCE through env. An unset or empty METRICS_PORT_BASE turns the
// listener off; otherwise instance N listens on port METRICS_PORT_BASE+N,
// and INSTANCE must be a positive whole number. Errors name the variable
// and say what is wanted.
func parseMetricsConfig(env func(string) (string, bool)) (metricsConfig, error) {
	baseStr, _ := env("METRICS_PORT_BASE")
	if baseStr == "" {
		return metricsConfig{}, nil
	}
	base, err := parseWhole(baseStr, maxPort-1)
	if err != nil {
		return metricsConfig{}, fmt.Errorf("METRICS_PORT_BASE=%s: want a whole number from 0 to %d (instance N serves /metrics on port METRICS_PORT_BASE+N): %w",
			quote(baseStr), maxPort-1, err)
	}
	instStr, _ := env("INSTANCE")
	n, err := parseWhole(instStr, maxPort)
	if err != nil || n == 0 || strconv.Itoa(n) != instStr {
		return metricsConfig{}, fmt.Errorf("INSTANCE=%s: METRICS_PORT_BASE is set, so the instance name must be its number (1, 2, …), as in app@1.service",
			quote(instStr))
	}
	if base+n > maxPort {
		return metricsConfig{}, fmt.Errorf("METRICS_PORT_BASE=%d + INSTANCE=%d = %d is above the highest port %d: lower METRICS_PORT_BASE",
			base, n, base+n, maxPort)
	}
	host, _ := env("METRICS_HOST")
	if err := checkHost(host); err != nil {
		return metricsConfig{}, fmt.Errorf("METRICS_HOST=%s: %w", quote(host), err)
	}
	return metricsConfig{host: host, port: base + n}, nil
}

// parseWhole parses s as a whole number of ASCII digits, no sign, from 0
// to max.
func parseWhole(s string, max int) (int, error) {
	if !isDigits(s) {
		return 0, errors.New("not a whole number")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > max {
		return 0, errors.New("too large")
	}
	return n, nil
}

// hostName is a DNS name as a resolver takes it: labels of letters,
// digits, '-' and '_', separated by dots.
var hostName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?$`)

// checkHost accepts an address or host name to listen on: empty for all
// addresses, an IP address (an IPv6 one with its zone, fe80::1%eth0) or a
// host name, without a port or brackets.
func checkHost(h string) error {
	if _, err := netip.ParseAddr(h); h == "" || err == nil {
		return nil
	}
	if _, _, err := net.SplitHostPort(h); err == nil {
		return errors.New("want an address without a port, such as 127.0.0.1 or ::1")
	}
	if len(h) > 253 || !hostName.MatchString(h) {
		return errors.New("want an address such as 127.0.0.1 or ::1, a host name, or nothing for all addresses")
	}
	return nil
}

// metricsServer serves the instance's /metrics alone on the port of
// metricsConfig, so that Prometheus can scrape each instance directly:
// scraping the shared socket would reach whichever instance accepts.
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// listenMetrics starts serving GET and HEAD /metrics from m on cfg's
// address; every other path is 404. It fails when the port cannot be
// bound. The caller closes the server when the instance exits.
func listenMetrics(cfg metricsConfig, inst *activation.Instance, m *metrics) (*metricsServer, error) {
	ln, err := net.Listen("tcp", cfg.addr())
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s (METRICS_PORT_BASE+INSTANCE): %w", cfg.addr(), err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", allowMethods([]string{http.MethodGet, http.MethodHead}, m.handler()))
	srv := &http.Server{
		Handler:           withHeaders(inst.Name(), mux),
		ReadHeaderTimeout: activation.DefaultReadHeaderTimeout,
		IdleTimeout:       activation.DefaultIdleTimeout,
		ErrorLog:          slog.NewLogLogger(inst.Logger().Handler(), slog.LevelWarn),
	}
	go func() { _ = srv.Serve(ln) }()
	return &metricsServer{srv: srv, ln: ln}, nil
}

// Addr is the address the server listens on.
func (s *metricsServer) Addr() net.Addr { return s.ln.Addr() }

// Close stops listening and closes the server's connections; a scrape in
// flight gets a second to finish.
func (s *metricsServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return errors.Join(err, s.srv.Close())
	}
	return nil
}

package activation

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// lookupFunc reads one environment variable; os.LookupEnv in production,
// a map in tests.
type lookupFunc func(key string) (string, bool)

// maxDrainTimeout bounds DRAIN_TIMEOUT so that a typo ("30m" for "30s")
// cannot keep a stopping instance around for hours.
const maxDrainTimeout = time.Hour

// parseListenAddr returns the address to listen on when not socket-activated:
// $LISTEN_ADDR (host:port), else $PORT (all interfaces), else def.
func parseListenAddr(env lookupFunc, def string) (string, error) {
	if v, ok := env("LISTEN_ADDR"); ok && v != "" {
		if err := validateAddr(v); err != nil {
			return "", fmt.Errorf("LISTEN_ADDR=%q: %w", v, err)
		}
		return v, nil
	}
	if v, ok := env("PORT"); ok && v != "" {
		if _, err := parsePort(v); err != nil {
			return "", fmt.Errorf("PORT=%q: %w", v, err)
		}
		return ":" + v, nil
	}
	return def, nil
}

// validateAddr checks a host:port listen address: the host empty (every
// address), an IP address or a host name, the port a number.
func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, e.g. 127.0.0.1:8080 or :8080: %w", err)
	}
	if strings.ContainsAny(host, " \t\r\n") {
		return fmt.Errorf("host %q contains white space", host)
	}
	if err := validateHost(host); err != nil {
		return err
	}
	if n, ok := parseDecimal(port, 65535); ok && n == 0 {
		return nil // an ephemeral port, chosen by the kernel
	}
	_, err = parsePort(port)
	return err
}

// hostName is a DNS name as a resolver takes it: labels of letters,
// digits, '-' and '_', separated by dots.
var hostName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?$`)

// validateHost accepts "", an IP address (an IPv6 one with its zone) or a
// host name of at most 253 characters.
func validateHost(host string) error {
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if len(host) <= 253 && hostName.MatchString(host) {
		return nil
	}
	return fmt.Errorf("host %q is neither an IP address nor a host name", host)
}

func parsePort(s string) (int, error) {
	p, ok := parseDecimal(s, 65535)
	if !ok || p < 1 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return int(p), nil
}

// parseDecimal reads a whole number written in ASCII digits only, with no
// sign, space or base prefix, from 0 to max.
func parseDecimal(s string, max int64) (int64, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n <= max
}

// errNotPID is what a variable that should hold a process ID says.
var errNotPID = errors.New("is not a process ID")

// parsePID reads a process ID: a positive number in digits.
func parsePID(s string) (int, error) {
	n, ok := parseDecimal(s, 1<<31-1)
	if !ok || n < 1 {
		return 0, errNotPID
	}
	return int(n), nil
}

// parseDrainTimeout reads $DRAIN_TIMEOUT, a Go duration such as "30s".
func parseDrainTimeout(env lookupFunc, def time.Duration) (time.Duration, error) {
	v, ok := env("DRAIN_TIMEOUT")
	if !ok || v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Millisecond || d > maxDrainTimeout {
		return 0, fmt.Errorf("DRAIN_TIMEOUT=%q: want a duration from 1ms to %s, e.g. 30s", v, maxDrainTimeout)
	}
	return d, nil
}

// parseWatchdog reads $WATCHDOG_USEC and $WATCHDOG_PID as systemd sets them
// for a unit with WatchdogSec=. It returns 0 when the watchdog is off or meant
// for another process (WATCHDOG_PID names someone else).
func parseWatchdog(env lookupFunc, pid int) (time.Duration, error) {
	usec, ok := env("WATCHDOG_USEC")
	if !ok || usec == "" {
		return 0, nil
	}
	if p, ok := env("WATCHDOG_PID"); ok && p != "" {
		n, err := parsePID(p)
		if err != nil {
			return 0, fmt.Errorf("WATCHDOG_PID=%q %w", p, err)
		}
		if n != pid {
			return 0, nil
		}
	}
	n, ok := parseDecimal(usec, int64(365*24*time.Hour/time.Microsecond))
	if !ok || n == 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}

// Bounds of CANARY_INTERVAL besides 0, and what the error says.
const (
	minCanaryInterval  = 10 * time.Millisecond
	maxCanaryInterval  = time.Minute
	canaryIntervalWant = "want 0 (once per health interval) or a duration from 10ms to 1m, e.g. 100ms"
)

// parseCanaryInterval reads $CANARY_INTERVAL, a Go duration: how long an
// instance accepting connections may go without a sign that its serving
// path works before it sends a canary; 0 sends it once per health
// interval only.
func parseCanaryInterval(env lookupFunc, def time.Duration) (time.Duration, error) {
	v, ok := env("CANARY_INTERVAL")
	if !ok || v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || validCanaryInterval(d) != nil {
		return 0, fmt.Errorf("CANARY_INTERVAL=%q: %s", v, canaryIntervalWant)
	}
	return d, nil
}

// validCanaryInterval checks a canary interval: 0, or from
// minCanaryInterval to maxCanaryInterval.
func validCanaryInterval(d time.Duration) error {
	if d != 0 && (d < minCanaryInterval || d > maxCanaryInterval) {
		return errors.New(canaryIntervalWant)
	}
	return nil
}

// maxKeepAliveRequests and maxKeepAliveTime bound KEEPALIVE_REQUESTS and
// KEEPALIVE_TIME against typos.
const (
	maxKeepAliveRequests = 1_000_000_000
	maxKeepAliveTime     = 24 * time.Hour
)

// parseKeepAlive reads $KEEPALIVE_REQUESTS (a count) and $KEEPALIVE_TIME
// (a Go duration); 0 turns a bound off, unset keeps def's.
func parseKeepAlive(env lookupFunc, def keepAliveLimits) (keepAliveLimits, error) {
	k := def
	if v, ok := env("KEEPALIVE_REQUESTS"); ok && v != "" {
		n, ok := parseDecimal(v, maxKeepAliveRequests)
		if !ok {
			return k, fmt.Errorf("KEEPALIVE_REQUESTS=%q: want a number of requests from 0 (no bound) to %d, e.g. 1000", v, maxKeepAliveRequests)
		}
		k.requests = n
	}
	if v, ok := env("KEEPALIVE_TIME"); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxKeepAliveTime {
			return k, fmt.Errorf("KEEPALIVE_TIME=%q: want a duration from 0 (no bound) to %s, e.g. 1m", v, maxKeepAliveTime)
		}
		k.age = d
	}
	return k, nil
}

// parseAcceptMode reads $ACCEPT_MODE: how socket-activated listeners wait
// for connections (AcceptExclusive or AcceptShared).
func parseAcceptMode(env lookupFunc) (string, error) {
	v, ok := env("ACCEPT_MODE")
	if !ok || v == "" {
		return AcceptExclusive, nil
	}
	if v != AcceptExclusive && v != AcceptShared {
		return "", fmt.Errorf("ACCEPT_MODE=%q: want %q (one idle instance woken per connection) or %q (Go's accept loop)", v, AcceptExclusive, AcceptShared)
	}
	return v, nil
}

// listenEnv is what systemd passes to a socket-activated process.
type listenEnv struct {
	fds   int      // number of descriptors from fd 3 on; 0 if not activated
	names []string // one name per descriptor
}

// parseListenEnv validates $LISTEN_PID, $LISTEN_FDS and $LISTEN_FDNAMES.
// Variables meant for another process (LISTEN_PID names someone else, as
// after a fork) are ignored, as sd_listen_fds(3) does.
func parseListenEnv(env lookupFunc, pid int) (listenEnv, error) {
	fdsStr, ok := env("LISTEN_FDS")
	if !ok || fdsStr == "" {
		return listenEnv{}, nil
	}
	pidStr, _ := env("LISTEN_PID")
	p, err := parsePID(pidStr)
	if err != nil {
		return listenEnv{}, fmt.Errorf("LISTEN_PID=%q %w (LISTEN_FDS is set)", pidStr, err)
	}
	if p != pid {
		return listenEnv{}, nil
	}
	count, ok := parseDecimal(fdsStr, 4096)
	if !ok {
		return listenEnv{}, fmt.Errorf("LISTEN_FDS=%q is not a count of file descriptors", fdsStr)
	}
	n := int(count)
	names := make([]string, n)
	if v, ok := env("LISTEN_FDNAMES"); ok && v != "" {
		got := strings.Split(v, ":")
		if len(got) != n {
			return listenEnv{}, fmt.Errorf("LISTEN_FDNAMES=%q names %d sockets, LISTEN_FDS=%d", v, len(got), n)
		}
		copy(names, got)
	}
	for i := range names {
		if names[i] == "" {
			names[i] = "LISTEN_FD_" + strconv.Itoa(3+i)
		}
	}
	return listenEnv{fds: n, names: names}, nil
}

// lowerASCII lowers the ASCII letters of s and nothing else: a setting
// such as LOG_LEVEL=WARN is read in any case, but no other letter (İ,
// which strings.ToLower makes i) becomes one of its words.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// osEnv is the process environment as a lookupFunc.
func osEnv(key string) (string, bool) { return os.LookupEnv(key) }

package activation

import (
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// The fuzz targets below hold each parser of the environment to its
// grammar, written here apart from the parser: a value the grammar accepts
// is read as exactly what it says, any other is refused with an error that
// names the variable, and nothing panics.

// number reads s by the grammar of the variables that hold a count: ASCII
// digits only, no sign, space or base prefix; ok is false otherwise or
// above max.
func number(s string, max int64) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Cmp(big.NewInt(max)) > 0 {
		return 0, false
	}
	return n.Int64(), true
}

// duration reads s as a Go duration from lo to hi.
func duration(s string, lo, hi time.Duration) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	return d, err == nil && d >= lo && d <= hi
}

// checkParse fails the test unless the parser's answer is the grammar's:
// the same value when ok, else an error naming name=value.
func checkParse[T comparable](t *testing.T, name, value string, got T, err error, want T, ok bool) {
	t.Helper()
	switch {
	case ok && err != nil:
		t.Fatalf("%s=%q refused: %v; want %v", name, value, err, want)
	case ok && got != want:
		t.Fatalf("%s=%q read as %v, want %v", name, value, got, want)
	case !ok && err == nil:
		t.Fatalf("%s=%q accepted as %v, want an error", name, value, got)
	case !ok && !strings.Contains(err.Error(), fmt.Sprintf("%s=%q", name, value)):
		t.Fatalf("%s=%q: error %q does not name the variable", name, value, err)
	}
}

// host reports whether h may be the host of a listen address: empty,
// an IP address, or a host name of labels of letters, digits, - and _.
func host(h string) bool {
	if _, err := netip.ParseAddr(h); h == "" || err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.ContainsFunc(l, func(r rune) bool {
			return !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) || r == '-' || r == '_')
		}) {
			return false
		}
	}
	return true
}

func FuzzListenAddr(f *testing.F) {
	for _, s := range [][2]string{
		{"127.0.0.1:8080", "80"}, {"", "8080"}, {"[::]:0", ""}, {"[fe80::1%eth0]:80", ""},
		{"localhost:00", ""}, {"a\x00b:80", ""}, {"host:http", ""}, {"", "+80"}, {"", "08080"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, addr, port string) {
		got, err := parseListenAddr(envOf("LISTEN_ADDR", addr, "PORT", port), DefaultAddr)
		switch {
		case addr != "":
			h, p, splitErr := net.SplitHostPort(addr)
			_, portOK := number(p, 65535)
			checkParse(t, "LISTEN_ADDR", addr, got, err, addr, splitErr == nil && portOK && host(h))
		case port != "":
			n, ok := number(port, 65535)
			checkParse(t, "PORT", port, got, err, ":"+port, ok && n >= 1)
		default:
			checkParse(t, "PORT", port, got, err, DefaultAddr, true)
		}
	})
}

func FuzzDrainTimeout(f *testing.F) {
	for _, s := range []string{"30s", "-1h", "500us", "1ms", "1h0m0.000000001s", "+5s", "10s "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if v == "" {
			return
		}
		got, err := parseDrainTimeout(envOf("DRAIN_TIMEOUT", v), DefaultDrainTimeout)
		want, ok := duration(v, time.Millisecond, time.Hour)
		checkParse(t, "DRAIN_TIMEOUT", v, got, err, want, ok)
	})
}

func FuzzCanaryInterval(f *testing.F) {
	for _, s := range []string{"100ms", "0", "9ms", "1m", "1m1ns", "-0s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if v == "" {
			return
		}
		got, err := parseCanaryInterval(envOf("CANARY_INTERVAL", v), DefaultCanaryInterval)
		want, ok := duration(v, 10*time.Millisecond, time.Minute)
		if d, err := time.ParseDuration(v); err == nil && d == 0 {
			want, ok = 0, true
		}
		checkParse(t, "CANARY_INTERVAL", v, got, err, want, ok)
	})
}

func FuzzWatchdog(f *testing.F) {
	for _, s := range [][2]string{{"10000000", ""}, {"500000", "42"}, {"500000", "43"}, {"+5", ""}, {"5", "+42"}, {"5", "042"}, {"31536000000001", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, usec, pid string) {
		if usec == "" {
			return
		}
		got, err := parseWatchdog(envOf("WATCHDOG_USEC", usec, "WATCHDOG_PID", pid), 42)
		if pid != "" {
			p, ok := number(pid, 1<<31-1)
			if !ok || p == 0 {
				checkParse(t, "WATCHDOG_PID", pid, got, err, 0, false)
				return
			}
			if p != 42 {
				checkParse(t, "WATCHDOG_PID", pid, got, err, 0, true)
				return
			}
		}
		n, ok := number(usec, int64(365*24*time.Hour/time.Microsecond))
		checkParse(t, "WATCHDOG_USEC", usec, got, err, time.Duration(n)*time.Microsecond, ok && n > 0)
	})
}

func FuzzKeepAlive(f *testing.F) {
	for _, s := range [][2]string{{"100", "90s"}, {"0", "0"}, {"-0", ""}, {"+5", ""}, {"", "25h"}, {"1000000001", "1e3s"}} {
		f.Add(s[0], s[1])
	}
	def := keepAliveLimits{requests: DefaultKeepAliveRequests, age: DefaultKeepAliveTime}
	f.Fuzz(func(t *testing.T, requests, age string) {
		got, err := parseKeepAlive(envOf("KEEPALIVE_REQUESTS", requests, "KEEPALIVE_TIME", age), def)
		want := def
		if requests != "" {
			n, ok := number(requests, maxKeepAliveRequests)
			if !ok {
				checkParse(t, "KEEPALIVE_REQUESTS", requests, got, err, want, false)
				return
			}
			want.requests = n
		}
		d, ok := duration(age, 0, 24*time.Hour)
		if age == "" {
			d, ok = want.age, true
		}
		want.age = d
		checkParse(t, "KEEPALIVE_TIME", age, got, err, want, ok)
	})
}

func FuzzAcceptMode(f *testing.F) {
	for _, s := range []string{"exclusive", "shared", "Shared", "shared ", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := parseAcceptMode(envOf("ACCEPT_MODE", v))
		want := v
		if v == "" {
			want = AcceptExclusive
		}
		checkParse(t, "ACCEPT_MODE", v, got, err, want, v == "" || v == "exclusive" || v == "shared")
	})
}

// FuzzListenEnv holds LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES, as
// systemd passes them to process 42, to sd_listen_fds(3)'s reading.
func FuzzListenEnv(f *testing.F) {
	for _, s := range [][3]string{{"1", "42", "app.socket"}, {"2", "42", "a:b"}, {"x", "", ""}, {"+1", "42", ""}, {"1", "+42", ""}, {"-0", "42", ""}, {"1", "7", ""}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, fds, pid, names string) {
		le, err := parseListenEnv(envOf("LISTEN_FDS", fds, "LISTEN_PID", pid, "LISTEN_FDNAMES", names), 42)
		if fds == "" {
			checkParse(t, "LISTEN_FDS", fds, le.fds, err, 0, true)
			return
		}
		p, ok := number(pid, 1<<31-1)
		if !ok || p == 0 {
			checkParse(t, "LISTEN_PID", pid, le.fds, err, 0, false)
			return
		}
		if p != 42 {
			checkParse(t, "LISTEN_PID", pid, le.fds, err, 0, true)
			return
		}
		n, ok := number(fds, 4096)
		if !ok {
			checkParse(t, "LISTEN_FDS", fds, le.fds, err, 0, false)
			return
		}
		want := make([]string, n)
		if names != "" {
			if got := strings.Split(names, ":"); len(got) == int(n) {
				copy(want, got)
			} else {
				checkParse(t, "LISTEN_FDNAMES", names, le.fds, err, 0, false)
				return
			}
		}
		for i := range want {
			if want[i] == "" {
				want[i] = fmt.Sprintf("LISTEN_FD_%d", 3+i)
			}
		}
		checkParse(t, "LISTEN_FDNAMES", names, strings.Join(le.names, "\x00"), err, strings.Join(want, "\x00"), true)
		if le.fds != int(n) {
			t.Fatalf("LISTEN_FDS=%q read as %d", fds, le.fds)
		}
	})
}

// logLevels are LOG_LEVEL's values, in lower case; any case is accepted,
// of ASCII letters only.
var logLevels = []string{"debug", "info", "warn", "warning", "error"}

func FuzzLogSettings(f *testing.F) {
	for _, s := range [][2]string{{"debug", "json"}, {"WARN", "text"}, {"İnfo", ""}, {"info ", "JSON"}, {"", "logfmt"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, level, format string) {
		env := envOf("LOG_LEVEL", level, "LOG_FORMAT", format)
		_, err := parseLogLevel(env)
		ok := level == ""
		for _, l := range logLevels {
			ok = ok || len(level) == len(l) && strings.EqualFold(level, l) && !strings.ContainsFunc(level, func(r rune) bool { return r >= utf8.RuneSelf })
		}
		checkParse(t, "LOG_LEVEL", level, 0, err, 0, ok)
		got, err := parseLogFormat(env)
		want := format
		if format == "" {
			want = "text"
		}
		checkParse(t, "LOG_FORMAT", format, got, err, want, format == "" || format == "text" || format == "json")
	})
}

func FuzzInstanceName(f *testing.F) {
	for _, s := range []string{"3", "blue-7", "a b", "tab\t", "\xff", "é", strings.Repeat("x", 65), "\u00a0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if v == "" {
			return // hostname-pid
		}
		got, err := instanceName(envOf("INSTANCE", v), 42)
		ok := len(v) <= 64 && utf8.ValidString(v) && !strings.ContainsFunc(v, func(r rune) bool {
			return r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.IsSpace(r) || unicode.Is(unicode.Zs, r)
		})
		checkParse(t, "INSTANCE", v, got, err, v, ok)
	})
}

// FuzzMemoryLimit holds MEMORY_LIMIT to the sizes MemoryMax= takes: digits
// and an optional K, M, G or T in either case, from 4M to 1024T.
func FuzzMemoryLimit(f *testing.F) {
	for _, s := range []string{"4M", "1024T", "12Q", "18446744073709551615", "1k", "+5M", "0064m", "1025T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if v == "" {
			return // the cgroup's memory.high
		}
		got, err := memoryLimit(envOf("MEMORY_LIMIT", v), "/nonexistent", "/nonexistent")
		digits, shift := v, uint(0)
		if k := strings.IndexByte("KMGTkmgt", v[len(v)-1]); k >= 0 {
			digits, shift = v[:len(v)-1], 10*uint(k%4+1)
		}
		n, ok := number(digits, 1<<62)
		bytes := new(big.Int).Lsh(big.NewInt(n), shift)
		ok = ok && bytes.Cmp(big.NewInt(minMemoryLimit)) >= 0 && bytes.Cmp(big.NewInt(maxMemoryLimit)) <= 0
		checkParse(t, "MEMORY_LIMIT", v, got, err, bytes.Uint64(), ok)
	})
}

package main

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// digits reads s as ASCII digits only, at most max; ok is false
// otherwise.
func digits(s string, max int) (int, bool) {
	if s == "" || len(s) > 9 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return n, n <= max
}

// listenHost reports whether h may be METRICS_HOST: empty, an IP address
// (with a zone, for IPv6), or a host name of dot-separated labels of ASCII
// letters, digits, - and _.
func listenHost(h string) bool {
	if _, err := netip.ParseAddr(h); h == "" || err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if l == "" || len(l) > 63 || strings.Trim(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return false
		}
	}
	return true
}

// FuzzMetricsConfig holds METRICS_PORT_BASE, INSTANCE and METRICS_HOST to
// their grammar: base digits from 0 to 65534, INSTANCE its number from 1
// without leading zeros, base+INSTANCE a port, the host as listenHost
// says; anything else is refused with an error naming the variable.
func FuzzMetricsConfig(f *testing.F) {
	for _, s := range [][3]string{
		{"18000", "3", ""}, {"18000", "1", "fe80::1%eth0"}, {"18000", "2", "a\x00b"}, {"18000", "2", "localhost."},
		{"+18000", "1", ""}, {"18000", "03", ""}, {"65000", "536", ""}, {"", "blue", "x y"}, {"18000", "3", "[::1]:9"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, base, inst, host string) {
		env := map[string]string{"INSTANCE": inst, "METRICS_HOST": host}
		if base != "" {
			env["METRICS_PORT_BASE"] = base
		}
		cfg, err := parseMetricsConfig(mapEnv(env))
		b, okBase := digits(base, maxPort-1)
		n, okInst := digits(inst, maxPort)
		okInst = okInst && n >= 1 && strconv.Itoa(n) == inst
		var blame string
		switch {
		case base == "":
			if err != nil || cfg.on() {
				t.Fatalf("METRICS_PORT_BASE unset: %+v, %v; want off", cfg, err)
			}
			return
		case !okBase:
			blame = "METRICS_PORT_BASE="
		case !okInst:
			blame = "INSTANCE="
		case b+n > maxPort:
			blame = "METRICS_PORT_BASE="
		case !listenHost(host):
			blame = "METRICS_HOST="
		}
		if blame != "" {
			if err == nil || !strings.Contains(err.Error(), blame) {
				t.Fatalf("base %q, instance %q, host %q: %+v, %v; want an error naming %s", base, inst, host, cfg, err, blame)
			}
			return
		}
		if want := net.JoinHostPort(host, strconv.Itoa(b+n)); err != nil || cfg.addr() != want {
			t.Fatalf("base %q, instance %q, host %q: %+v, %v; want %s", base, inst, host, cfg, err, want)
		}
	})
}

// FuzzFault holds APP_FAULT to its words: one of them or nothing.
func FuzzFault(f *testing.F) {
	for _, s := range []string{"", "wedge", "grow", "fail-start", "Wedge", "wedge ", "none"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := parseFault(v)
		known := false
		for _, k := range []fault{faultNone, faultFailStart, faultWedge, faultGrow} {
			known = known || string(k) == v
		}
		switch {
		case known && (err != nil || string(got) != v):
			t.Fatalf("APP_FAULT=%q: %q, %v", v, got, err)
		case !known && (err == nil || !strings.Contains(err.Error(), "APP_FAULT=")):
			t.Fatalf("APP_FAULT=%q accepted as %q, or the error %v does not name it", v, got, err)
		}
	})
}

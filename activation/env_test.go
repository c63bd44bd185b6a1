package activation

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func envOf(kv ...string) lookupFunc {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseListenAddr(t *testing.T) {
	for _, tc := range []struct {
		env     []string
		want    string
		wantErr string
	}{
		{nil, ":8080", ""},
		{[]string{"PORT", "9000"}, ":9000", ""},
		{[]string{"LISTEN_ADDR", "127.0.0.1:7000", "PORT", "9000"}, "127.0.0.1:7000", ""},
		{[]string{"LISTEN_ADDR", "[::1]:7000"}, "[::1]:7000", ""},
		{[]string{"LISTEN_ADDR", ":0"}, ":0", ""},
		{[]string{"LISTEN_ADDR", "", "PORT", "81"}, ":81", ""},
		{[]string{"LISTEN_ADDR", "localhost"}, "", "want host:port"},
		{[]string{"LISTEN_ADDR", "host:http"}, "", "not a number"},
		{[]string{"LISTEN_ADDR", "a b:80"}, "", "white space"},
		{[]string{"LISTEN_ADDR", ":65536"}, "", "1 to 65535"},
		{[]string{"PORT", "0"}, "", "PORT=\"0\""},
		{[]string{"PORT", "-1"}, "", "1 to 65535"},
		{[]string{"PORT", "+80"}, "", "1 to 65535"},
		{[]string{"PORT", "80 "}, "", "1 to 65535"},
		{[]string{"PORT", "eighty"}, "", "1 to 65535"},
		// Found by FuzzListenAddr: accepted, then failing to listen
		// without naming the variable, or refused though valid.
		{[]string{"LISTEN_ADDR", "a\x00b:80"}, "", "neither an IP address nor a host name"},
		{[]string{"LISTEN_ADDR", "a/b:80"}, "", "LISTEN_ADDR"},
		{[]string{"LISTEN_ADDR", "[fe80::1%eth0]:80"}, "[fe80::1%eth0]:80", ""},
		{[]string{"LISTEN_ADDR", "host_1.example.:80"}, "host_1.example.:80", ""},
		{[]string{"LISTEN_ADDR", "localhost:00"}, "localhost:00", ""},
	} {
		got, err := parseListenAddr(envOf(tc.env...), DefaultAddr)
		if !errMatches(err, tc.wantErr) || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q, error containing %q", tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseDrainTimeout(t *testing.T) {
	for _, tc := range []struct {
		v       string
		want    time.Duration
		wantErr bool
	}{
		{"", DefaultDrainTimeout, false},
		{"10s", 10 * time.Second, false},
		{"1m30s", 90 * time.Second, false},
		{"1h", time.Hour, false},
		{"0s", 0, true},
		{"1ms", time.Millisecond, false},
		{"500us", 0, true}, // below the 1ms the message asks for: found by FuzzDrainTimeout
		{"-5s", 0, true},
		{"2h", 0, true},
		{"30", 0, true},
		{"soon", 0, true},
	} {
		got, err := parseDrainTimeout(envOf("DRAIN_TIMEOUT", tc.v), DefaultDrainTimeout)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("DRAIN_TIMEOUT=%q: got %s, %v", tc.v, got, err)
		}
		if err != nil && !strings.Contains(err.Error(), "DRAIN_TIMEOUT") {
			t.Errorf("error %q does not name the variable", err)
		}
	}
}

func TestParseKeepAlive(t *testing.T) {
	def := keepAliveLimits{requests: DefaultKeepAliveRequests, age: DefaultKeepAliveTime}
	for _, tc := range []struct {
		env     []string
		want    keepAliveLimits
		wantErr string
	}{
		{nil, def, ""},
		{[]string{"KEEPALIVE_REQUESTS", "100"}, keepAliveLimits{100, DefaultKeepAliveTime}, ""},
		{[]string{"KEEPALIVE_REQUESTS", "0", "KEEPALIVE_TIME", "0"}, keepAliveLimits{}, ""},
		{[]string{"KEEPALIVE_TIME", "90s"}, keepAliveLimits{DefaultKeepAliveRequests, 90 * time.Second}, ""},
		{[]string{"KEEPALIVE_REQUESTS", "-1"}, def, "KEEPALIVE_REQUESTS"},
		{[]string{"KEEPALIVE_REQUESTS", "+5"}, def, "KEEPALIVE_REQUESTS"},
		{[]string{"KEEPALIVE_REQUESTS", "-0"}, def, "KEEPALIVE_REQUESTS"},
		{[]string{"KEEPALIVE_REQUESTS", "lots"}, def, "KEEPALIVE_REQUESTS"},
		{[]string{"KEEPALIVE_REQUESTS", "2000000000"}, def, "KEEPALIVE_REQUESTS"},
		{[]string{"KEEPALIVE_TIME", "60"}, def, "KEEPALIVE_TIME"},
		{[]string{"KEEPALIVE_TIME", "-1s"}, def, "KEEPALIVE_TIME"},
		{[]string{"KEEPALIVE_TIME", "25h"}, def, "KEEPALIVE_TIME"},
	} {
		got, err := parseKeepAlive(envOf(tc.env...), def)
		if !errMatches(err, tc.wantErr) || (err == nil && got != tc.want) {
			t.Errorf("%q: got %+v, %v; want %+v, error containing %q", tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseAcceptMode(t *testing.T) {
	for _, tc := range []struct {
		v, want, wantErr string
	}{
		{"", AcceptExclusive, ""},
		{"exclusive", AcceptExclusive, ""},
		{"shared", AcceptShared, ""},
		{"Shared", "", "ACCEPT_MODE"},
		{"reuseport", "", "ACCEPT_MODE"},
	} {
		got, err := parseAcceptMode(envOf("ACCEPT_MODE", tc.v))
		if !errMatches(err, tc.wantErr) || got != tc.want {
			t.Errorf("ACCEPT_MODE=%q: got %q, %v", tc.v, got, err)
		}
	}
}

func TestParseCanaryInterval(t *testing.T) {
	for _, tc := range []struct {
		v       string
		want    time.Duration
		wantErr string
	}{
		{"", DefaultCanaryInterval, ""},
		{"0", 0, ""},
		{"10ms", 10 * time.Millisecond, ""},
		{"1m", time.Minute, ""},
		{"5ms", 0, "CANARY_INTERVAL"},
		{"2m", 0, "CANARY_INTERVAL"},
		{"-1s", 0, "CANARY_INTERVAL"},
		{"100", 0, "CANARY_INTERVAL"},
	} {
		got, err := parseCanaryInterval(envOf("CANARY_INTERVAL", tc.v), DefaultCanaryInterval)
		if !errMatches(err, tc.wantErr) || got != tc.want {
			t.Errorf("CANARY_INTERVAL=%q: got %s, %v", tc.v, got, err)
		}
	}
}

func TestParseWatchdog(t *testing.T) {
	for _, tc := range []struct {
		env     []string
		want    time.Duration
		wantErr bool
	}{
		{nil, 0, false},
		{[]string{"WATCHDOG_USEC", "10000000"}, 10 * time.Second, false},
		{[]string{"WATCHDOG_USEC", "500000", "WATCHDOG_PID", "42"}, 500 * time.Millisecond, false},
		{[]string{"WATCHDOG_USEC", "500000", "WATCHDOG_PID", "43"}, 0, false}, // meant for someone else
		{[]string{"WATCHDOG_USEC", "0"}, 0, true},
		{[]string{"WATCHDOG_USEC", "-1"}, 0, true},
		{[]string{"WATCHDOG_USEC", "1s"}, 0, true},
		{[]string{"WATCHDOG_USEC", "99999999999999999999"}, 0, true},
		{[]string{"WATCHDOG_USEC", "1000", "WATCHDOG_PID", "x"}, 0, true},
		// A sign was read as if absent: found by FuzzWatchdog.
		{[]string{"WATCHDOG_USEC", "+5"}, 0, true},
		{[]string{"WATCHDOG_USEC", "500000", "WATCHDOG_PID", "+42"}, 0, true},
	} {
		got, err := parseWatchdog(envOf(tc.env...), 42)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%q: got %s, %v", tc.env, got, err)
		}
	}
}

func TestParseListenEnv(t *testing.T) {
	for _, tc := range []struct {
		env       []string
		wantFDs   int
		wantNames []string
		wantErr   string
	}{
		{nil, 0, nil, ""},
		{[]string{"LISTEN_FDS", "1", "LISTEN_PID", "42"}, 1, []string{"LISTEN_FD_3"}, ""},
		{[]string{"LISTEN_FDS", "2", "LISTEN_PID", "42", "LISTEN_FDNAMES", "a:b"}, 2, []string{"a", "b"}, ""},
		{[]string{"LISTEN_FDS", "2", "LISTEN_PID", "42", "LISTEN_FDNAMES", ":b"}, 2, []string{"LISTEN_FD_3", "b"}, ""},
		{[]string{"LISTEN_FDS", "1", "LISTEN_PID", "7"}, 0, nil, ""}, // inherited from a parent
		{[]string{"LISTEN_FDS", "1"}, 0, nil, "LISTEN_PID"},
		{[]string{"LISTEN_FDS", "x", "LISTEN_PID", "42"}, 0, nil, "LISTEN_FDS"},
		{[]string{"LISTEN_FDS", "-2", "LISTEN_PID", "42"}, 0, nil, "LISTEN_FDS"},
		{[]string{"LISTEN_FDS", "2", "LISTEN_PID", "42", "LISTEN_FDNAMES", "a"}, 0, nil, "names 1 sockets"},
		// A sign was read as if absent: found by FuzzListenEnv.
		{[]string{"LISTEN_FDS", "+1", "LISTEN_PID", "42"}, 0, nil, "LISTEN_FDS"},
		{[]string{"LISTEN_FDS", "-0", "LISTEN_PID", "42"}, 0, nil, "LISTEN_FDS"},
		{[]string{"LISTEN_FDS", "1", "LISTEN_PID", "+42"}, 0, nil, "LISTEN_PID"},
	} {
		got, err := parseListenEnv(envOf(tc.env...), 42)
		if !errMatches(err, tc.wantErr) || got.fds != tc.wantFDs || strings.Join(got.names, ",") != strings.Join(tc.wantNames, ",") {
			t.Errorf("%q: got %+v, %v; want %d %q, error containing %q", tc.env, got, err, tc.wantFDs, tc.wantNames, tc.wantErr)
		}
	}
}

func TestLoggerSettings(t *testing.T) {
	for _, tc := range []struct {
		env     []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"LOG_LEVEL", "debug", "LOG_FORMAT", "json"}, ""},
		{[]string{"LOG_LEVEL", "WARN"}, ""},
		{[]string{"LOG_LEVEL", "verbose"}, "LOG_LEVEL"},
		{[]string{"LOG_FORMAT", "logfmt"}, "LOG_FORMAT"},
		{[]string{"LOG_LEVEL", "İnfo"}, "LOG_LEVEL"}, // strings.ToLower made it info: found by FuzzLogSettings
	} {
		var sb strings.Builder
		_, err := newLogger(envOf(tc.env...), &sb)
		if !errMatches(err, tc.wantErr) {
			t.Errorf("%q: %v, want error containing %q", tc.env, err, tc.wantErr)
		}
	}
}

func TestInstanceName(t *testing.T) {
	for _, tc := range []struct {
		v       string
		want    string
		wantErr bool
	}{
		{"3", "3", false},
		{"blue-7", "blue-7", false},
		{"", "-42", false}, // hostname-pid
		{"a b", "", true},
		{"tab\t", "", true},
		{strings.Repeat("x", 65), "", true},
		{"\xff", "", true}, // not UTF-8, and read as U+FFFD: found by FuzzInstanceName
	} {
		got, err := instanceName(envOf("INSTANCE", tc.v), 42)
		if (err != nil) != tc.wantErr || !strings.HasSuffix(got, tc.want) {
			t.Errorf("INSTANCE=%q: got %q, %v", tc.v, got, err)
		}
	}
}

var journalFieldRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

func TestJournalField(t *testing.T) {
	for in, want := range map[string]string{
		"instance": "INSTANCE", "request_id": "REQUEST_ID", "http.method": "HTTP_METHOD",
		"_private": "PRIVATE", "9lives": "LIVES", "": "FIELD", "é": "FIELD",
	} {
		if got := journalField(in); got != want {
			t.Errorf("journalField(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzJournalField(f *testing.F) {
	for _, s := range []string{"instance", "a.b", "_x", "ß", strings.Repeat("k", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if got := journalField(key); !journalFieldRE.MatchString(got) {
			t.Fatalf("journalField(%q) = %q, not a valid journal field", key, got)
		}
	})
}

func errMatches(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}

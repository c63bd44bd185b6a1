package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitkit/unitkit/internal/herd"
	"github.com/unitkit/unitkit/internal/journal"
	"github.com/unitkit/unitkit/internal/remote"
)

// errReached is what the tests' system answers: the command got past its
// checks and would now ask systemd or the journal.
var errReached = errors.New("reached the system")

// outcome is how one run of appctl against the tests' system ended.
type outcome struct {
	code           int
	connects       int // calls to connect: systemd would have been asked
	streams        int // calls to stream: the journal would have been read
	remotes        int // calls to run: another host would have been asked
	stdout, stderr string
}

// reached reports whether the run got as far as systemd or the journal.
func (r outcome) reached() bool { return r.connects+r.streams+r.remotes > 0 }

// runOffline runs appctl with args and env against a system that counts
// what it is asked and answers errReached: no D-Bus, no journal, and no
// program in $PATH.
func runOffline(env map[string]string, args []string) outcome {
	var stdout, stderr bytes.Buffer
	var (
		r  outcome
		mu sync.Mutex // logs asks several hosts at once
	)
	count := func(n *int) { mu.Lock(); *n++; mu.Unlock() }
	o := &options{
		stdout: &stdout, stderr: &stderr,
		env: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		sys: system{
			connect: func(context.Context, herd.App) (*herd.Herd, error) { count(&r.connects); return nil, errReached },
			stream:  func(context.Context, io.Writer, journal.Options) error { count(&r.streams); return errReached },
			lookPath: func(string) (string, error) {
				return "", exec.ErrNotFound
			},
			run: func(context.Context, remote.Host, []string, io.Writer, io.Writer) error {
				count(&r.remotes)
				return errReached
			},
		},
	}
	r.code = execute(context.Background(), newRoot(o), args, &stderr)
	r.stdout, r.stderr = stdout.String(), stderr.String()
	return r
}

// checkOutcome holds any run to appctl's exit status contract: 0, 1 or 2;
// a usage error (2) says so, prints nothing on stdout and reaches
// nothing; a run that reached systemd or the journal got its error back.
func checkOutcome(t *testing.T, args []string, r outcome) {
	t.Helper()
	switch r.code {
	case exitOK, exitFailure:
	case exitUsage:
		if r.reached() {
			t.Fatalf("%q: a usage error after reaching systemd (%d connects) or the journal (%d streams):\n%s", args, r.connects, r.streams, r.stderr)
		}
		if r.stdout != "" || !strings.Contains(r.stderr, "Try '") {
			t.Fatalf("%q: usage error with stdout %q, stderr %q", args, r.stdout, r.stderr)
		}
	default:
		t.Fatalf("%q: exit %d, want 0, 1 or 2", args, r.code)
	}
	if r.reached() && (r.code != exitFailure || !strings.Contains(r.stderr, errReached.Error())) {
		t.Fatalf("%q: reached the system but exit %d:\n%s", args, r.code, r.stderr)
	}
	if r.connects > 1 || r.streams > 1 {
		t.Fatalf("%q: %d connects, %d streams after the first failed", args, r.connects, r.streams)
	}
}

// Every mistake on the command line is a usage error found before systemd
// or the journal is reached. The rows under a comment each failed that
// once (FuzzVerbs found them); the others keep it so.
func TestUsageBeforeSystemd(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string // in the message
	}{
		// restart checked its instances only after connecting.
		{[]string{"restart", "x"}, nil, `invalid instance "x"`},
		{[]string{"restart", "2", "0"}, nil, `invalid instance "0"`},
		{[]string{"restart", "shop@2"}, nil, `invalid instance "shop@2"`},
		// scale N above the limit was found after connecting and locking.
		{[]string{"scale", "65"}, nil, "exceeds the limit of 64"},
		{[]string{"scale", "5", "--limit", "4"}, nil, "exceeds the limit of 4"},
		{[]string{"scale", "9"}, map[string]string{"APPCTL_MAX_INSTANCES": "8"}, "exceeds the limit of 8"},
		// pflag reads ints in Go's syntax: 070 was 56, 0x10 16, 1_0 10.
		{[]string{"autoscale", "1-4", "--cpu", "0101"}, nil, "--cpu 101"},
		{[]string{"autoscale", "1-4", "--cpu", "0x10"}, nil, "decimal digits"},
		{[]string{"autoscale", "1-4", "--queue", "1_000"}, nil, "decimal digits"},
		{[]string{"scale", "4", "--limit", "0b111"}, nil, "decimal digits"},
		{[]string{"logs", "-n", "0o17"}, nil, "decimal digits"},
		{[]string{"top", "-n", "+3"}, nil, "decimal digits"},
		{[]string{"scale", "4", "--limit", "99999999999999999999"}, nil, "too large"},
		// APPCTL_MAX_INSTANCES with a sign was read as its number.
		{[]string{"scale", "4"}, map[string]string{"APPCTL_MAX_INSTANCES": "+8"}, "APPCTL_MAX_INSTANCES"},
		{[]string{"scale", "4"}, map[string]string{"APPCTL_MAX_INSTANCES": " 8"}, "APPCTL_MAX_INSTANCES"},
		// autoscale without MIN-MAX ignored its options and showed the setting.
		{[]string{"autoscale", "--cpu", "50"}, nil, "takes no options, got --cpu"},
		{[]string{"autoscale", "--window", "5m", "--queue", "3"}, nil, "got --queue --window"},
		{[]string{"autoscale", "off", "--queue", "3"}, nil, "autoscale off takes no options"},
		{[]string{"scale", "-"}, nil, "invalid count"},
		{[]string{"persist", "3"}, map[string]string{"APPCTL_PLACEMENT": "CPUs"}, "APPCTL_PLACEMENT"},
		{[]string{"logs", "--since", " "}, nil, "--since is empty"},
		{[]string{"logs", "-i", "0"}, nil, `invalid instance "0"`},
		{[]string{"persist", "07"}, nil, "invalid count"},
		{[]string{"autoscaler", "1-4:cpu70:window60s"}, nil, "invalid autoscale setting"},
		{[]string{"backoff", "app@1.service"}, nil, "SERVICE_RESULT is not set"},
		{[]string{"--app", "a b", "status"}, nil, "invalid app name"},
	} {
		r := runOffline(tc.env, tc.args)
		checkOutcome(t, tc.args, r)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 saying %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// What is valid reaches systemd (or, for logs, the journal), even where
// an option's spelling is unusual; an inherited --app is no option of
// autoscale off. The last row failed once.
func TestValidReachesSystemd(t *testing.T) {
	for _, args := range [][]string{
		{"scale", "4"}, {"scale", "-2"}, {"scale", "+1", "--limit", "010"}, {"scale", "max", "--limit=10000"},
		{"status", "--json"}, {"top", "-n", "3", "--interval", "250ms"}, {"reload", "--timeout", "2m"},
		{"restart"}, {"restart", "1", "app@2", "app@3.service"}, {"start"}, {"stop"},
		{"metrics", "--textfile", "/x/app.prom"}, {"autoscale"}, {"autoscale", "off"},
		{"autoscale", "0-8", "--cpu", "50", "--window", "5m", "--queue", "-0"},
		{"persist", "0"}, {"autoscaler", "off"}, {"autoscaler", "1-4:cpu70:window1m0s"},
		{"--app", "shop", "autoscale", "off"},
	} {
		r := runOffline(nil, args)
		checkOutcome(t, args, r)
		if r.connects != 1 {
			t.Errorf("%q: exit %d, %d connects; want it to reach systemd:\n%s", args, r.code, r.connects, r.stderr)
		}
	}
	r := runOffline(nil, []string{"logs", "-f", "-n", "0", "-i", "3", "-o", "json", "--since", "-1h"})
	if r.streams != 1 {
		t.Errorf("logs: %d streams, want 1:\n%s", r.streams, r.stderr)
	}
}

func TestDecimalFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true}, {"70", 70, true}, {"070", 70, true}, {"-1", -1, true}, {"-0", 0, true},
		{"", 0, false}, {"-", 0, false}, {"+1", 0, false}, {"0x10", 0, false}, {"1_0", 0, false},
		{"1e3", 0, false}, {" 1", 0, false}, {"1 ", 0, false}, {"--1", 0, false}, {"١", 0, false},
		{"9223372036854775807", 1<<63 - 1, true}, {"9223372036854775808", 0, false},
	} {
		var n int
		err := decimalFlag(&n, 5).Set(tc.in)
		if (err == nil) != tc.ok || (tc.ok && n != tc.want) || (!tc.ok && n != 5) {
			t.Errorf("Set(%q): %d, %v; want %d, ok=%v", tc.in, n, err, tc.want, tc.ok)
		}
	}
}

// FuzzArgs runs appctl on arbitrary command lines (the arguments separated
// by NUL, which no argument can hold) and holds every run to the exit
// status contract: see checkOutcome.
func FuzzArgs(f *testing.F) {
	for _, seed := range []string{
		"scale\x004", "scale\x00-2", "scale\x00+1\x00--limit\x008", "scale\x00max", "status\x00--json",
		"top\x00-n\x002", "reload\x00--timeout\x0030s", "restart\x00app@2", "logs\x00-f\x00-i\x003",
		"metrics\x00--textfile\x00/x/a.prom", "autoscale\x001-4\x00--cpu\x0050", "autoscale\x00off",
		"import\x00eco.json\x00--dry-run\x00--writable\x00uploads", "--app\x00shop\x00stop",
		"persist\x003", "autoscaler\x000-8:cpu50:window30s:queue16", "backoff\x00app@1.service",
		"help\x00scale", "completion\x00bash", "-H\x00h1\x00status", "-H\x00root@h1,h2\x00logs\x00-n\x005",
		"-H\x00-oProxyCommand=x\x00stop", "--host=h1\x00scale\x00--\x00-1", "--help", "scale\x00--\x00-3", "__complete\x00scale\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\x00")
		if len(args) > 12 {
			return
		}
		checkOutcome(t, args, runOffline(nil, args))
	})
}

// call is one structured command line for FuzzVerbs: a verb, at most one
// of its flags, an optional argument, the app and APPCTL_MAX_INSTANCES.
type call struct {
	verb    verbSpec
	flag    string // "" for none
	val     string
	pos     string
	withPos bool
	app     string // "" for the default
	maxEnv  string // "" for unset
	host    string // the -H value, "" for none
}

// fuzzHosts are the -H values FuzzVerbs gives (FuzzArgs and
// remote.FuzzParseHost try arbitrary ones).
var fuzzHosts = []string{"", "h1", "root@192.0.2.1,h2", "-oProxyCommand=id", "a b", "", "h1,", "::1"}

// verbSpec is a verb and the flags FuzzVerbs gives it.
type verbSpec struct {
	name  string
	flags []string
}

var fuzzVerbs = []verbSpec{
	{"scale", []string{"limit"}}, {"status", []string{"json"}}, {"top", []string{"interval", "iterations"}},
	{"reload", []string{"timeout"}}, {"restart", nil}, {"start", nil}, {"stop", nil},
	{"logs", []string{"lines", "output", "since", "instance", "follow"}}, {"metrics", []string{"textfile"}},
	{"autoscale", []string{"cpu", "window", "queue"}}, {"persist", nil}, {"autoscaler", nil}, {"backoff", nil},
}

// args is the command line of c: flags as --name=value, the argument after
// "--" so that it is never taken for a flag.
func (c call) args() []string {
	var a []string
	if c.app != "" {
		a = append(a, "--app="+c.app)
	}
	if c.host != "" {
		a = append(a, "-H", c.host)
	}
	a = append(a, c.verb.name)
	if c.flag != "" {
		a = append(a, "--"+c.flag+"="+c.val)
	}
	if c.withPos {
		a = append(a, "--", c.pos)
	}
	return a
}

// Where a call should end.
const (
	wantUsage   = "usage"
	wantSystemd = "systemd"
	wantJournal = "journal"
	wantRemote  = "remote"
)

// The grammar of the command line as the man page gives it, written apart
// from the code under test.
var (
	appRE      = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.:-]{0,63}$`)
	decimalRE  = regexp.MustCompile(`^-?[0-9]+$`)
	digitsRE   = regexp.MustCompile(`^[0-9]+$`)
	changeRE   = regexp.MustCompile(`^[+-][0-9]+$`)
	rangeRE    = regexp.MustCompile(`^([0-9]{1,7})-([0-9]{1,7})$`)
	settingRE  = regexp.MustCompile(`^([0-9]{1,7})-([0-9]{1,7}):cpu([0-9]{1,7}):window([^:]*)(:queue([0-9]{1,7}))?$`)
	instanceRE = `^(%s@)?[1-9][0-9]*(\.service)?$`
)

// expect is where c should end, by the grammar: with -H, a valid call of
// a verb that takes it ends at the remote host instead.
func (c call) expect() string {
	want := c.expectHere()
	if c.host == "" || want == wantUsage {
		return want
	}
	hosts := strings.Split(c.host, ",")
	for _, h := range hosts {
		if !hostRE.MatchString(h) && net.ParseIP(strings.TrimPrefix(h, "root@")) == nil {
			return wantUsage
		}
	}
	switch {
	case c.verb.name == "persist" || c.verb.name == "autoscaler":
		return wantUsage
	case c.verb.name == "top" && len(hosts) > 1:
		return wantUsage
	}
	return wantRemote
}

// hostRE is a [user@]host with a DNS name.
var hostRE = regexp.MustCompile(`^([a-z_][a-z0-9_.-]*@)?[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$`)

// expectHere is where c should end on this machine, by the grammar.
func (c call) expectHere() string {
	app := c.app
	if app == "" {
		app = "app"
	}
	if !appRE.MatchString(app) || strings.Contains(app, "..") {
		return wantUsage
	}
	v := oracle{c: c, app: app}
	switch c.verb.name {
	case "scale":
		return v.scale()
	case "status":
		return v.ends(!c.withPos && v.boolFlag("json"), wantSystemd)
	case "top":
		return v.ends(!c.withPos && v.durationFlag("interval", 100*time.Millisecond, 1<<63-1) && v.intFlag("iterations", 0, 1<<63-1), wantSystemd)
	case "reload":
		return v.ends(!c.withPos && v.durationFlag("timeout", 1, 1<<63-1), wantSystemd)
	case "restart":
		return v.ends(!c.withPos || v.instance(c.pos), wantSystemd)
	case "start", "stop":
		return v.ends(!c.withPos, wantSystemd)
	case "logs":
		return v.ends(!c.withPos && v.logsFlag(), wantJournal)
	case "metrics":
		ok := c.flag == "" || strings.HasSuffix(c.val, ".prom") && filepath.Base(c.val) != ".prom"
		return v.ends(!c.withPos && ok, wantSystemd)
	case "autoscale":
		return v.autoscale()
	case "persist":
		limit, ok := v.limit()
		n, err := strconv.Atoi(c.pos)
		return v.ends(ok && c.withPos && err == nil && strconv.Itoa(n) == c.pos && n >= 0 && n <= limit, wantSystemd)
	case "autoscaler":
		limit, ok := v.limit()
		return v.ends(ok && c.withPos && (c.pos == "off" || v.setting(c.pos, limit)), wantSystemd)
	}
	return wantUsage // backoff: SERVICE_RESULT is not set
}

// oracle decides calls by the grammar.
type oracle struct {
	c   call
	app string
}

// ends is where a call ends: at the system when ok, else a usage error.
func (v oracle) ends(ok bool, reached string) string {
	if ok {
		return reached
	}
	return wantUsage
}

// intFlag reports whether flag, if it is the one given, is a decimal
// number from lo to hi.
func (v oracle) intFlag(flag string, lo, hi int64) bool {
	n, ok := v.intValue(flag, 0)
	return v.c.flag != flag || ok && n >= lo && n <= hi
}

// intValue is flag's number, def if not given; ok is false when the value
// is not a decimal number.
func (v oracle) intValue(flag string, def int64) (int64, bool) {
	if v.c.flag != flag {
		return def, true
	}
	n, err := strconv.ParseInt(v.c.val, 10, 64)
	return n, err == nil && decimalRE.MatchString(v.c.val)
}

func (v oracle) durationFlag(flag string, lo, hi time.Duration) bool {
	d, ok := v.durationValue(flag, 0)
	return v.c.flag != flag || ok && d >= lo && d <= hi
}

func (v oracle) durationValue(flag string, def time.Duration) (time.Duration, bool) {
	if v.c.flag != flag {
		return def, true
	}
	d, err := time.ParseDuration(v.c.val)
	return d, err == nil
}

func (v oracle) boolFlag(flag string) bool {
	_, err := strconv.ParseBool(v.c.val)
	return v.c.flag != flag || err == nil
}

// limit is APPCTL_MAX_INSTANCES, or 64.
func (v oracle) limit() (int, bool) {
	if v.c.maxEnv == "" {
		return defaultLimit, true
	}
	n, err := strconv.Atoi(v.c.maxEnv)
	return n, err == nil && digitsRE.MatchString(v.c.maxEnv) && n >= 1 && n <= 10000
}

// instance reports whether ref names an instance: N, APP@N or
// APP@N.service, N a whole number from 1 written without leading zeros.
func (v oracle) instance(ref string) bool {
	re := regexp.MustCompile(fmt.Sprintf(instanceRE, regexp.QuoteMeta(v.app)))
	digits := strings.TrimSuffix(strings.TrimPrefix(ref, v.app+"@"), ".service")
	_, err := strconv.ParseInt(digits, 10, 64)
	return re.MatchString(ref) && err == nil
}

func (v oracle) scale() string {
	c := v.c
	if !c.withPos {
		return wantUsage
	}
	limit := int64(defaultLimit)
	if c.flag == "limit" {
		n, ok := v.intValue("limit", 0)
		if !ok || n < 1 {
			return wantUsage
		}
		limit = n
	} else {
		n, ok := v.limit()
		if !ok {
			return wantUsage
		}
		limit = int64(n)
	}
	switch {
	case c.pos == "max":
		return v.ends(int64(runtime.NumCPU()) <= limit, wantSystemd)
	case digitsRE.MatchString(c.pos):
		n, err := strconv.ParseInt(c.pos, 10, 64)
		return v.ends(err == nil && n <= 1_000_000 && n <= limit, wantSystemd)
	case changeRE.MatchString(c.pos):
		n, err := strconv.ParseInt(c.pos[1:], 10, 64)
		return v.ends(err == nil && n >= 1 && n <= 1_000_000, wantSystemd)
	}
	return wantUsage
}

func (v oracle) logsFlag() bool {
	c := v.c
	switch c.flag {
	case "output":
		return c.val == "text" || c.val == "json"
	case "since":
		return strings.TrimSpace(c.val) != ""
	case "instance":
		return c.val == "" || v.instance(c.val)
	case "follow":
		return v.boolFlag("follow")
	}
	return v.intFlag("lines", 0, 1<<63-1)
}

func (v oracle) autoscale() string {
	c := v.c
	if !c.withPos || c.pos == "off" {
		return v.ends(c.flag == "", wantSystemd)
	}
	m := rangeRE.FindStringSubmatch(c.pos)
	limit, ok := v.limit()
	if m == nil || !ok {
		return wantUsage
	}
	cpu, okCPU := v.intValue("cpu", 70)
	queue, okQueue := v.intValue("queue", 0)
	window, okWindow := v.durationValue("window", time.Minute)
	lo, _ := strconv.Atoi(m[1])
	hi, _ := strconv.Atoi(m[2])
	return v.ends(okCPU && okQueue && okWindow && spec(lo, hi, int(limit), cpu, queue, window), wantSystemd)
}

// spec reports whether the autoscale settings are within their bounds.
func spec(lo, hi, limit int, cpu, queue int64, window time.Duration) bool {
	return hi >= 1 && lo <= hi && hi <= limit && cpu >= 1 && cpu <= 100 &&
		window >= 0 && window <= time.Hour && window%time.Millisecond == 0 && queue >= 0 && queue <= 1_000_000
}

// setting reports whether name is an autoscaler's instance name exactly
// as appctl autoscale writes it, within limit.
func (v oracle) setting(name string, limit int) bool {
	m := settingRE.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	window, err := time.ParseDuration(m[4])
	if err != nil {
		return false
	}
	lo, _ := strconv.Atoi(m[1])
	hi, _ := strconv.Atoi(m[2])
	cpu, _ := strconv.ParseInt(m[3], 10, 64)
	queue, _ := strconv.ParseInt(m[6], 10, 64)
	canonical := fmt.Sprintf("%d-%d:cpu%d:window%s", lo, hi, cpu, window)
	if m[5] != "" {
		canonical += fmt.Sprintf(":queue%d", queue)
	}
	return canonical == name && (m[5] == "" || queue > 0) && spec(lo, hi, limit, cpu, queue, window)
}

// FuzzVerbs runs every verb with one of its flags, an argument, an app
// name and APPCTL_MAX_INSTANCES, and checks that the call ends where the
// grammar says: a usage error that reaches nothing, or at systemd (the
// journal for logs).
func FuzzVerbs(f *testing.F) {
	f.Add(uint8(0), uint8(0), "8", "+2", true, "", "")
	f.Add(uint8(0), uint8(1), "", "-0", true, "shop", "8")
	f.Add(uint8(2), uint8(1), "010", "", false, "", "")
	f.Add(uint8(3), uint8(0), "1m30s", "", false, "a:b", "")
	f.Add(uint8(4), uint8(0), "", "app@3.service", true, "", "")
	f.Add(uint8(7), uint8(3), "app@2", "", false, "", "")
	f.Add(uint8(8), uint8(0), "/x/.prom", "", false, "", "")
	f.Add(uint8(9), uint8(1), "1.5s", "0-8", true, "", "+9")
	f.Add(uint8(9), uint8(0), "0x10", "1-4", true, "", "")
	f.Add(uint8(10), uint8(0), "", "007", true, "", "")
	f.Add(uint8(11), uint8(0), "", "1-4:cpu70:window1m0s:queue16", true, "", "")
	f.Add(uint8(12), uint8(0), "", "app@1.service", true, "", "")
	f.Fuzz(func(t *testing.T, verb, flag uint8, val, pos string, withPos bool, app, maxEnv string) {
		v := fuzzVerbs[int(verb)%len(fuzzVerbs)]
		c := call{verb: v, val: val, pos: pos, withPos: withPos, app: app, maxEnv: maxEnv, host: fuzzHosts[int(verb)/16%len(fuzzHosts)]}
		if k := int(flag) % (len(v.flags) + 1); k < len(v.flags) {
			c.flag = v.flags[k]
		}
		var env map[string]string
		if maxEnv != "" {
			env = map[string]string{"APPCTL_MAX_INSTANCES": maxEnv}
		}
		args := c.args()
		r := runOffline(env, args)
		checkOutcome(t, args, r)
		got := wantUsage
		switch {
		case r.remotes > 0:
			got = wantRemote
		case r.connects > 0:
			got = wantSystemd
		case r.streams > 0:
			got = wantJournal
		case r.code != exitUsage:
			got = fmt.Sprintf("exit %d", r.code)
		}
		if want := c.expect(); got != want {
			t.Fatalf("%q (APPCTL_MAX_INSTANCES=%q): ended with %s, want %s:\n%s", args, maxEnv, got, want, r.stderr)
		}
	})
}

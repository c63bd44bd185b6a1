package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSliceName(t *testing.T) {
	tests := []struct{ app, want string }{
		{"app", "system-app.slice"},
		{"my-app", `system-my\x2dapp.slice`},
		{"a-b-c", `system-a\x2db\x2dc.slice`},
		{"web_1.v2:x", "system-web_1.v2:x.slice"},
		{".hidden", `system-\x2ehidden.slice`},
		{"a/b", "system-a-b.slice"},
		{`a\b`, `system-a\x5cb.slice`},
	}
	for _, tt := range tests {
		if got := sliceName(tt.app); got != tt.want {
			t.Errorf("sliceName(%q) = %q, want %q", tt.app, got, tt.want)
		}
	}
}

func TestFilter(t *testing.T) {
	all := Options{App: "app"}
	three := Options{App: "app", Instance: "3"}
	tests := []struct {
		name     string
		rec      map[string]any
		o        Options
		unit     string
		instance string
		ok       bool
	}{
		{"instance", rec("_SYSTEMD_UNIT", "app@3.service", "_PID", "42"), all, "app@3.service", "3", true},
		{"named instance", rec("_SYSTEMD_UNIT", "app@blue.service"), all, "app@blue.service", "blue", true},
		{"socket", rec("_SYSTEMD_UNIT", "app.socket"), all, "app.socket", "", true},
		{"other unit", rec("_SYSTEMD_UNIT", "sshd.service", "_PID", "7"), all, "", "", false},
		{"other app", rec("_SYSTEMD_UNIT", "app-persist@3.service"), all, "", "", false},
		{"prefix app", rec("_SYSTEMD_UNIT", "myapp@3.service"), all, "", "", false},
		{"empty instance", rec("_SYSTEMD_UNIT", "app@.service"), all, "", "", false},
		{"not a service", rec("_SYSTEMD_UNIT", "app@3.scope"), all, "", "", false},
		{"pid 1 about instance", rec("_SYSTEMD_UNIT", "init.scope", "_PID", "1", "UNIT", "app@5.service"), all, "app@5.service", "5", true},
		{"pid 1 about socket", rec("_SYSTEMD_UNIT", "init.scope", "_PID", "1", "UNIT", "app.socket"), all, "app.socket", "", true},
		{"pid 1 about other", rec("_SYSTEMD_UNIT", "init.scope", "_PID", "1", "UNIT", "cron.service"), all, "", "", false},
		{"pid 1 no unit", rec("_SYSTEMD_UNIT", "init.scope", "_PID", "1"), all, "", "", false},
		{"UNIT from other pid", rec("_SYSTEMD_UNIT", "evil.service", "_PID", "9", "UNIT", "app@3.service"), all, "", "", false},
		{"app logs UNIT", rec("_SYSTEMD_UNIT", "app@3.service", "UNIT", "app@4.service"), all, "app@3.service", "3", true},
		{"instance option keeps it", rec("_SYSTEMD_UNIT", "app@3.service"), three, "app@3.service", "3", true},
		{"instance option drops other", rec("_SYSTEMD_UNIT", "app@4.service"), three, "", "", false},
		{"instance option drops 33", rec("_SYSTEMD_UNIT", "app@33.service"), three, "", "", false},
		{"instance option drops socket", rec("_SYSTEMD_UNIT", "app.socket"), three, "", "", false},
		{"instance option drops pid 1 socket", rec("_PID", "1", "UNIT", "app.socket"), three, "", "", false},
		{"instance option keeps pid 1", rec("_PID", "1", "UNIT", "app@3.service"), three, "app@3.service", "3", true},
		{"dashed app", rec("_SYSTEMD_UNIT", "my-app@2.service"), Options{App: "my-app"}, "my-app@2.service", "2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unit, instance, ok := filter(tt.rec, tt.o)
			if ok != tt.ok || (ok && (unit != tt.unit || instance != tt.instance)) {
				t.Errorf("filter = %q, %q, %v; want %q, %q, %v", unit, instance, ok, tt.unit, tt.instance, tt.ok)
			}
		})
	}
}

// rec builds a record from key, value pairs.
func rec(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// ts is the time of the test records, and usec its __REALTIME_TIMESTAMP.
var (
	ts   = time.Date(2025, 3, 4, 5, 6, 7, 891_234_000, time.UTC)
	usec = "1741064767891234"
)

func TestFormatText(t *testing.T) {
	clock := ts.Local().Format("15:04:05.000")
	tests := []struct {
		name string
		rec  map[string]any
		o    Options
		want string // "" when the record is dropped
	}{
		{
			"instance",
			rec("__REALTIME_TIMESTAMP", usec, "_SYSTEMD_UNIT", "app@3.service", "MESSAGE", "hello\n", "PRIORITY", "6"),
			Options{App: "app"},
			clock + " app@3    hello\n",
		},
		{
			"socket",
			rec("__REALTIME_TIMESTAMP", usec, "_PID", "1", "UNIT", "app.socket", "MESSAGE", "Listening on app.socket."),
			Options{App: "app"},
			clock + " socket   Listening on app.socket.\n",
		},
		{
			"long prefix extends",
			rec("__REALTIME_TIMESTAMP", usec, "_SYSTEMD_UNIT", "service@12.service", "MESSAGE", "x"),
			Options{App: "service"},
			clock + " service@12 x\n",
		},
		{
			"control characters",
			rec("__REALTIME_TIMESTAMP", usec, "_SYSTEMD_UNIT", "app@1.service", "MESSAGE", "a\tb\nc\x1b[2J\u009bd\r\n\n"),
			Options{App: "app"},
			clock + ` app@1    a` + "\t" + `b\nc\x1b[2J\u009bd` + "\n",
		},
		{
			"byte array message",
			rec("__REALTIME_TIMESTAMP", usec, "_SYSTEMD_UNIT", "app@1.service", "MESSAGE", bytesJSON("ok \xff\x1b")),
			Options{App: "app"},
			clock + " app@1    ok \uFFFD\\x1b\n",
		},
		{
			"error, no colour",
			rec("__REALTIME_TIMESTAMP", usec, "_SYSTEMD_UNIT", "app@2.service", "MESSAGE", "boom", "PRIORITY", "3"),
			Options{App: "app"},
			clock + " app@2    boom\n",
		},
		{
			"error, colour",
			rec("__REALTIME_TIMESTAMP", usec, "_SYSTEMD_UNIT", "app@2.service", "MESSAGE", "boom", "PRIORITY", "3"),
			Options{App: "app", Color: true},
			clock + " " + palette[2] + "app@2" + reset + "    " + red + "boom" + reset + "\n",
		},
		{
			"warning, colour",
			rec("__REALTIME_TIMESTAMP", usec, "_SYSTEMD_UNIT", "app@1.service", "MESSAGE", "hmm", "PRIORITY", "4"),
			Options{App: "app", Color: true},
			clock + " " + palette[1] + "app@1" + reset + "    " + yellow + "hmm" + reset + "\n",
		},
		{
			"info, colour",
			rec("__REALTIME_TIMESTAMP", usec, "_SYSTEMD_UNIT", "app@1.service", "MESSAGE", "fine", "PRIORITY", "6"),
			Options{App: "app", Color: true},
			clock + " " + palette[1] + "app@1" + reset + "    fine\n",
		},
		{
			"dropped",
			rec("__REALTIME_TIMESTAMP", usec, "_SYSTEMD_UNIT", "cron.service", "MESSAGE", "x"),
			Options{App: "app"},
			"",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			ok, err := format(&b, tt.rec, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tt.want != "") || b.String() != tt.want {
				t.Errorf("format = %v, %q; want %q", ok, b.String(), tt.want)
			}
			if !tt.o.Color && strings.Contains(b.String(), "\x1b") {
				t.Errorf("escape code without Color: %q", b.String())
			}
		})
	}
}

// bytesJSON returns s as journalctl gives data that is not UTF-8: an array
// of numbers, as encoding/json decodes it.
func bytesJSON(s string) []any {
	a := make([]any, len(s))
	for i := range len(s) {
		a[i] = float64(s[i])
	}
	return a
}

func TestInstanceColorStable(t *testing.T) {
	for _, inst := range []string{"", "1", "blue", "7"} {
		c := instanceColor(inst)
		if c != instanceColor(inst) || !slices.Contains(palette, c) {
			t.Errorf("instanceColor(%q) = %q: not stable or not in the palette", inst, c)
		}
	}
	if instanceColor("1") == instanceColor("2") {
		t.Error("instances 1 and 2 have the same colour")
	}
}

func TestFormatJSON(t *testing.T) {
	line := `{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"` + usec + `","__MONOTONIC_TIMESTAMP":"5",` +
		`"_BOOT_ID":"b","_SYSTEMD_UNIT":"app@3.service","_SYSTEMD_SLICE":"system-app.slice","_PID":"123",` +
		`"_UID":"999","PRIORITY":"4","SYSLOG_IDENTIFIER":"app","SYSLOG_FACILITY":"3","CODE_FILE":"x.go",` +
		`"CODE_LINE":"1","CODE_FUNC":"f","MESSAGE_ID":"m","INVOCATION_ID":"i","UNIT":"u",` +
		`"MESSAGE":[104,105,255,60,10],"INSTANCE":"3","REQUEST_ID":"r-1","TAGS":["a","b"],"BLOB":null}`
	var b bytes.Buffer
	if err := formatLine(&b, []byte(line+"\n"), Options{App: "app", JSON: true, Color: true}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want one line, got %q", out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("escape code in JSON: %q", out)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"time":     "2025-03-04T05:06:07.891234Z",
		"unit":     "app@3.service",
		"instance": "3",
		"priority": float64(4),
		"message":  "hi\uFFFD<\n",
		"pid":      float64(123),
		"fields":   map[string]any{"INSTANCE": "3", "REQUEST_ID": "r-1", "TAGS": "b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON =\n%v\nwant\n%v", got, want)
	}
	if !strings.Contains(out, `"message":"hi`+"\uFFFD"+`<\n"`) {
		t.Errorf("message not as expected in %s", out)
	}
}

func TestFormatJSONDefaults(t *testing.T) {
	var b bytes.Buffer
	r := rec("_PID", "1", "UNIT", "app.socket", "MESSAGE", "Listening")
	if _, err := format(&b, r, Options{App: "app", JSON: true}); err != nil {
		t.Fatal(err)
	}
	want := `{"time":"","unit":"app.socket","instance":"","priority":6,"message":"Listening","pid":1,"fields":{}}` + "\n"
	if b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
}

func TestCopyRecords(t *testing.T) {
	in := `{"__REALTIME_TIMESTAMP":"` + usec + `","_SYSTEMD_UNIT":"app@1.service","MESSAGE":"one"}` + "\n" +
		`{"__REALTIME_TIMESTAMP":"` + usec + `","_SYSTEMD_UNIT":"cron.service","MESSAGE":"other"}` + "\n" +
		"\n" +
		`{"__REALTIME_TIMESTAMP":"` + usec + `","_SYSTEMD_UNIT":"app@2.service","MESSAGE":"two"}`
	var b bytes.Buffer
	if err := copyRecords(&b, strings.NewReader(in), Options{App: "app"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "app@1    one") || !strings.HasSuffix(lines[1], "app@2    two") {
		t.Errorf("got %q", b.String())
	}
	if err := copyRecords(&b, strings.NewReader("{bad\n"), Options{App: "app"}); err == nil {
		t.Error("no error for bad JSON")
	}
}

func TestCommandArgs(t *testing.T) {
	base := []string{"--no-pager", "--output=json", "--all"}
	all := []string{"_SYSTEMD_SLICE=system-app.slice", "+", "_SYSTEMD_UNIT=app.socket", "+", "_PID=1"}
	three := []string{"_SYSTEMD_UNIT=app@3.service", "+", "_PID=1", "UNIT=app@3.service"}
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"all lines", args(Options{App: "app", Lines: -1}), cat(base, []string{"--lines=all"}, all)},
		{"follow", args(Options{App: "app", Lines: 0, Follow: true}), cat(base, []string{"--lines=0", "--follow"}, all)},
		{"since follow", args(Options{App: "app", Lines: -1, Since: "today", Follow: true}), cat(base, []string{"--lines=all", "--since=today", "--follow"}, all)},
		{"dashed app", args(Options{App: "my-app", Lines: -1}), cat(base, []string{"--lines=all", `_SYSTEMD_SLICE=system-my\x2dapp.slice`, "+", "_SYSTEMD_UNIT=my-app.socket", "+", "_PID=1"})},
		{"tail", tailArgs(Options{App: "app", Lines: 50}), cat(base, []string{"--reverse"}, all)},
		{"tail since", tailArgs(Options{App: "app", Lines: 10, Since: "-1h"}), cat(base, []string{"--reverse", "--since=-1h"}, all)},
		{"tail instance", tailArgs(Options{App: "app", Instance: "3", Lines: 5}), cat(base, []string{"--reverse"}, three)},
		{"follow after", followArgs(Options{App: "app", Lines: 5, Since: "-1h", Follow: true}, "s=1"), cat(base, []string{"--lines=all", "--after-cursor=s=1", "--follow"}, all)},
		{"follow empty journal", followArgs(Options{App: "app", Instance: "3", Lines: 5, Follow: true}, ""), cat(base, []string{"--lines=0", "--follow"}, three)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Equal(tt.got, tt.want) {
				t.Errorf("args =\n%q\nwant\n%q", tt.got, tt.want)
			}
		})
	}
	cmd := Command(context.Background(), []string{"--lines=1"})
	if !strings.HasSuffix(cmd.Args[0], "journalctl") || !slices.Equal(cmd.Args[1:], []string{"--lines=1"}) {
		t.Errorf("runs %q", cmd.Args)
	}
}

func cat(parts ...[]string) []string { return slices.Concat(parts...) }

// format writes rec to w as Stream would if it passes filter, and reports
// whether it did.
func format(w io.Writer, rec map[string]any, o Options) (bool, error) {
	unit, instance, ok := filter(rec, o)
	if !ok {
		return false, nil
	}
	return true, writeEntry(w, decode(rec, unit, instance), o)
}

func TestExitError(t *testing.T) {
	exit1 := exec.Command("sh", "-c", "exit 1").Run()
	if exit1 == nil {
		t.Fatal("sh -c 'exit 1' succeeded")
	}
	if err := exitError(exec.Command("sh", "-c", "kill -INT $$").Run(), "x"); err != nil {
		t.Errorf("interrupt: %v", err)
	}
	if err := exitError(exec.Command("sh", "-c", "kill -TERM $$").Run(), ""); err == nil {
		t.Error("no error for SIGTERM")
	}
	if err := exitError(nil, "anything"); err != nil {
		t.Errorf("success: %v", err)
	}
	err := exitError(exit1, "No journal files were opened due to insufficient permissions.")
	if err == nil || !strings.Contains(err.Error(), "insufficient permissions") || !strings.Contains(err.Error(), permissionHint) {
		t.Errorf("permission error: %v", err)
	}
	err = exitError(exit1, "Failed to parse timestamp: garbage")
	if err == nil || !strings.Contains(err.Error(), "garbage") || strings.Contains(err.Error(), permissionHint) {
		t.Errorf("other error: %v", err)
	}
	if !errors.Is(err, exit1) {
		t.Errorf("%v does not wrap the exit error", err)
	}
}

func TestTailWriter(t *testing.T) {
	var fwd bytes.Buffer
	w := &tailWriter{forward: &fwd}
	_, _ = w.Write([]byte("Hint: first\n"))
	_, _ = w.Write([]byte(strings.Repeat("x", 5000) + "\nlast \x1b line\n\n"))
	if got := w.lastLine(); got != `last \x1b line` {
		t.Errorf("lastLine = %q", got)
	}
	if len(w.tail) > tailSize {
		t.Errorf("tail holds %d bytes", len(w.tail))
	}
	if !strings.HasPrefix(fwd.String(), "Hint: first\n") || fwd.Len() < 5000 {
		t.Error("not forwarded")
	}
}

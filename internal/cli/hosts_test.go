package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/unitkit/unitkit/internal/herd"
	"github.com/unitkit/unitkit/internal/journal"
	"github.com/unitkit/unitkit/internal/remote"
)

// hostRun is what the tests' hosts answer: per host, its output or an
// error; every command line asked for is kept.
type hostRun struct {
	out   map[string]string
	fail  map[string]error
	mu    sync.Mutex // logs asks several hosts at once
	asked []string
}

func (hr *hostRun) run(_ context.Context, h remote.Host, argv []string, stdout, stderr io.Writer) error {
	hr.mu.Lock()
	hr.asked = append(hr.asked, h.String()+" "+strings.Join(argv, " "))
	hr.mu.Unlock()
	if err := hr.fail[h.String()]; err != nil {
		fmt.Fprintln(stderr, "ssh says no")
		return err
	}
	_, err := io.WriteString(stdout, hr.out[h.String()])
	return err
}

// runHosts runs appctl with args against hr's hosts; nothing local is
// reachable.
func runHosts(hr *hostRun, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	o := &options{stdout: &stdout, stderr: &stderr, env: func(string) (string, bool) { return "", false },
		sys: system{
			connect:  func(context.Context, herd.App) (*herd.Herd, error) { return nil, errReached },
			stream:   func(context.Context, io.Writer, journal.Options) error { return errReached },
			lookPath: func(string) (string, error) { return "", exec.ErrNotFound },
			run:      hr.run,
		}}
	code := execute(context.Background(), newRoot(o), args, &stderr)
	return code, stdout.String(), stderr.String()
}

// The remote command line is the one parsed here: the service, the verb,
// the flags given, and the arguments after "--".
func TestRemoteArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-H", "h1", "scale", "2"}, "h1 appctl --app=app scale -- 2"},
		{[]string{"--app", "shop", "-H", "root@h1", "scale", "--limit", "8", "-2"}, "root@h1 appctl --app=shop scale --limit=8 -- -2"},
		{[]string{"-Hh1", "logs", "-f", "-n", "5"}, "h1 appctl --app=app logs --follow=true --lines=5 --"},
		{[]string{"--host=h1", "reload", "--timeout=2m"}, "h1 appctl --app=app reload --timeout=2m0s --"},
		{[]string{"-H", "h1", "restart", "2", "app@3"}, "h1 appctl --app=app restart -- 2 app@3"},
	} {
		hr := &hostRun{}
		if code, _, stderr := runHosts(hr, tc.args...); code != 0 || len(hr.asked) != 1 || hr.asked[0] != tc.want {
			t.Errorf("%q: exit %d, asked %q; want %q\n%s", tc.args, code, hr.asked, tc.want, stderr)
		}
	}
}

// Bad -H values and verbs that do not take -H are usage errors that ask
// no host.
func TestHostsUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-H", "", "status"}, "empty host"},
		{[]string{"-H", "a b", "status"}, `host "a b"`},
		{[]string{"-H", "-oProxyCommand=touch /tmp/x", "status"}, "-oProxyCommand"},
		{[]string{"-H=-oProxyCommand=x", "status"}, "-oProxyCommand"},
		{[]string{"-H", "h1,", "status"}, "empty host"},
		{[]string{"-H", "h1", "-H", "h2", "top"}, "top takes one -H"},
		{[]string{"-H", "h1", "persist", "3"}, "persist does not take -H"},
		{[]string{"-H", "h1", "import", "eco.json"}, "import does not take -H"},
		{[]string{"-H", "h1", "scale", "x"}, "invalid count"},
	} {
		hr := &hostRun{}
		code, stdout, stderr := runHosts(hr, tc.args...)
		if code != exitUsage || stdout != "" || len(hr.asked) != 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, asked %q, stderr %q; want a usage error saying %q", tc.args, code, hr.asked, stderr, tc.want)
		}
	}
}

const hostStatus = `{"app":"app","time":"2026-12-02T15:00:00Z",
 "socket":{"unit":"app.socket","state":"active","sub_state":"listening","listen":["[::]:8080"],"queued":0,"backlog":4096},
 "instances":[{"unit":"app@1.service","instance":"1","state":"active","sub_state":"running","pid":%d,"uptime_seconds":60,
   "restarts":0,"memory_restarts":0,"cpu_percent":1.5,"rss_bytes":10485760,"fds":9,"status":"serving","enabled":true}],
 "summary":{"instances":1,"running":1,"enabled":1,"rss_bytes":10485760},"autoscale":{"on":false}}`

// status with several hosts is one table with a HOST column, or a JSON
// array with each entry's host; a host that fails is named, the others
// shown, and the exit status is 1.
func TestStatusOnHosts(t *testing.T) {
	hr := &hostRun{out: map[string]string{"h1": fmt.Sprintf(hostStatus, 101), "root@h2": fmt.Sprintf(hostStatus, 202)}}
	code, stdout, stderr := runHosts(hr, "-H", "h1,root@h2", "status")
	if code != 0 || !strings.HasPrefix(stdout, "HOST ") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"h1       app.socket", "h1       app@1", " 101 ", "root@h2  app@1", " 202 ", "root@h2: 1 instances: 1 running"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(hr.asked[0], "status --json --") {
		t.Errorf("asked %q", hr.asked)
	}

	code, stdout, _ = runHosts(hr, "-H", "h1", "-H", "root@h2", "status", "--json")
	var all []struct {
		Host      string         `json:"host"`
		Instances []instanceJSON `json:"instances"`
	}
	if err := json.Unmarshal([]byte(stdout), &all); code != 0 || err != nil || len(all) != 2 ||
		all[0].Host != "h1" || all[1].Host != "root@h2" || all[1].Instances[0].PID != 202 {
		t.Fatalf("exit %d, %v: %+v\n%s", code, err, all, stdout)
	}

	hr.fail = map[string]error{"h1": fmt.Errorf("h1: %w: ssh: connect to host h1 port 22: No route to host", remote.ErrUnreachable)}
	code, stdout, stderr = runHosts(hr, "-H", "h1,root@h2", "status")
	if code != exitFailure || !strings.Contains(stdout, "root@h2  app@1") || !strings.Contains(stdout, "h1       -") ||
		!strings.Contains(stderr, "h1: ssh says no") || !strings.Contains(stderr, "appctl: h1: host unreachable") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// Other verbs run on each host in turn and stop at the first failure.
func TestVerbOnHostsStopsAtFailure(t *testing.T) {
	hr := &hostRun{out: map[string]string{"h1": "scaled\n"}, fail: map[string]error{"h2": &remote.ExitError{Host: remote.Host{Name: "h2"}, Code: 1}}}
	code, stdout, stderr := runHosts(hr, "-H", "h1,h2,h3", "scale", "2")
	if code != exitFailure || len(hr.asked) != 2 || stdout != "h1:\nscaled\nh2:\n" || !strings.Contains(stderr, "h2: failed (exit status 1)") {
		t.Fatalf("exit %d, asked %q\n%q\n%s", code, hr.asked, stdout, stderr)
	}
}

// logs with several hosts interleaves their records in time order, each
// with its host.
func TestLogsOnHosts(t *testing.T) {
	rec := `{"time":"2026-12-02T15:00:0%dZ","unit":"app@1.service","instance":"1","priority":6,"message":"%s","pid":7,"fields":{}}` + "\n"
	hr := &hostRun{out: map[string]string{
		"h1": fmt.Sprintf(rec, 1, "one") + fmt.Sprintf(rec, 3, "three"),
		"h2": fmt.Sprintf(rec, 2, "two") + fmt.Sprintf(rec, 4, "four"),
	}}
	code, stdout, stderr := runHosts(hr, "-H", "h1,h2", "logs", "-n", "5", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var r struct{ Host, Message string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got = append(got, r.Host+":"+r.Message)
	}
	if strings.Join(got, " ") != "h1:one h2:two h1:three h2:four" {
		t.Fatalf("records %q", got)
	}
	code, stdout, _ = runHosts(hr, "-H", "h1,h2", "logs")
	if lines := strings.Split(strings.TrimSpace(stdout), "\n"); code != 0 || len(lines) != 4 || !strings.Contains(lines[1], " h2 ") || !strings.HasSuffix(lines[1], "app@1    two") {
		t.Fatalf("exit %d, text:\n%s", code, stdout)
	}
}

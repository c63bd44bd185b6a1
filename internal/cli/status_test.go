package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/internal/backoff"
	"github.com/unitkit/unitkit/internal/herd"
)

func snapshot() herd.Snapshot {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return herd.Snapshot{
		App: "app", Time: now,
		Socket: herd.Socket{Unit: "app.socket", State: "active", SubState: "running", Listen: []string{"[::]:8080"}, Queued: 3, Backlog: 4096},
		Instances: []herd.Instance{
			{Unit: "app@1.service", Name: "1", Number: 1, State: "active", SubState: "running", PID: 42,
				Started: now.Add(-100 * time.Second), Restarts: 2, Status: "ready: 7 requests served, 0 in flight",
				Enabled: true, CPUTime: 10, RSS: 10 << 20, FDs: 7},
			{Unit: "app@2.service", Name: "2", Number: 2, State: "activating", SubState: "auto-restart", FDs: -1},
			{Unit: "app@3.service", Name: "3", Number: 3, State: "failed", SubState: "failed", FDs: -1, Enabled: true},
			{Unit: "app@4.service", Name: "4", Number: 4, State: "deactivating", SubState: "stop-post", FDs: -1, Enabled: true,
				Backoff: &backoff.State{Failures: 6, Last: backoff.Failure{Result: "exit-code", Code: "exited", Status: "1"},
					Delay: 3200 * time.Millisecond, Next: now.Add(3200 * time.Millisecond)}},
		},
	}
}

// The --json document carries the documented keys and derived figures.
func TestStatusJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, snapshot(), nil, autoscaleJSON{}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"app", "time", "socket", "instances", "summary"} {
		if _, ok := got[key]; !ok {
			t.Errorf("no %q in %s", key, buf.String())
		}
	}
	j := toJSON(snapshot(), nil, autoscaleJSON{})
	in := j.Instances[0]
	if in.UptimeSec != 100 || in.CPUPercent != 10 || in.Started != "2026-01-02T03:02:25Z" || in.CPUNow != nil {
		t.Errorf("instance 1: %+v", in)
	}
	if j.Summary != (summaryJSON{Instances: 4, Running: 1, Starting: 1, Failed: 1, Backoff: 1, Enabled: 3, RSSBytes: 10 << 20}) {
		t.Errorf("summary %+v", j.Summary)
	}
	if j.Instances[1].Started != "" || j.Instances[1].UptimeSec != 0 {
		t.Errorf("a stopped instance has an uptime: %+v", j.Instances[1])
	}
	if b := j.Instances[3].Backoff; b == nil || *b != (backoffJSON{Failures: 6, LastFailure: "exit-code, status 1",
		NextAttempt: "2026-01-02T03:04:08.2Z", SecondsLeft: 3.2}) || j.Instances[0].Backoff != nil {
		t.Errorf("back-off: %+v", j.Instances[3].Backoff)
	}
}

// The table shows one line per instance, the socket line and the summary;
// with top's figures the CPU column is the current one.
func TestStatusTable(t *testing.T) {
	var buf bytes.Buffer
	if err := writeTable(&buf, snapshot(), nil, autoscaleJSON{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"app.socket  active (running)  [::]:8080  queued 3/4096",
		"app@1     active (running)",
		"1m40s",
		"10.0MiB",
		"ready: 7 requests served",
		"app@2     activating (auto-restart)",
		"app@4     backoff (6 failed, next in 3.2s)",
		"4 instances: 1 running, 1 starting, 1 failed, 1 backing off; 3 start at boot; 10.0MiB resident",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	if err := writeTable(&buf, snapshot(), cpuNow{"app@1.service": 55.5}, autoscaleJSON{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "CPU%NOW") || !strings.Contains(buf.String(), "55.5") {
		t.Errorf("top's table:\n%s", buf.String())
	}
}

func TestCRLF(t *testing.T) {
	var buf bytes.Buffer
	if _, err := (crlf{&buf}).Write([]byte("a\nb\n")); err != nil || buf.String() != "a\r\nb\r\n" {
		t.Fatalf("%q, %v", buf.String(), err)
	}
}

func TestQuoteNegativeCounts(t *testing.T) {
	for in, want := range map[string]string{
		"scale -2":           "scale -- -2",
		"--app x scale -1":   "--app x scale -- -1",
		"scale 2":            "scale 2",
		"restart -2":         "restart -2",
		"scale --limit 3 -2": "scale --limit 3 -- -2",
		"scale -- -2":        "scale -- -2",
		"logs -n 5":          "logs -n 5",
	} {
		if got := strings.Join(quoteNegativeCounts(strings.Fields(in)), " "); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}

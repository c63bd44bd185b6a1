package tests

import (
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// faultFile switches an instance's fault on while it exists: the drop-ins
// below read it at every start, so removing it fixes the instance without
// a daemon-reload, as fixing a configuration would.
const faultFile = "/etc/app-fault.env"

// An instance that fails at every start backs off: its waits grow from the
// first delay, doubling, to the cap, with one journal record of the
// back-off per attempt; appctl status and appctl metrics show it; the
// socket and the healthy instance serve throughout. Once fixed it comes
// back by itself within the cap, and after a healthy run its next failure
// restarts at once again.
func TestCrashLoopBacksOffAndRecovers(t *testing.T) {
	h := newHerd(t, dropIn{"app@2.service", "fault", "[Service]\nEnvironmentFile=-" + faultFile + "\n" +
		"Environment=RESTART_BACKOFF_FIRST=100ms RESTART_BACKOFF_MAX=1600ms RESTART_MIN_UPTIME=3s\n"})
	h.must(h.s.WriteFile(faultFile, []byte("APP_FAULT=fail-start\n"), 0o644))
	h.systemctl("start", "app@1.service")
	stopWatch := h.watchSocket()
	ld := h.load(false)
	ld.Run(4, "/")
	h.systemctl("start", "--no-block", "app@2.service")

	var sawStatus, sawMetric bool
	h.waitFor("app@2 backing off at its cap", 60*time.Second, func() bool {
		sawStatus = sawStatus || h.statusBackoff("app@2.service") > 0
		out, _ := h.appctl("metrics")
		sawMetric = sawMetric || regexp.MustCompile(`unitkit_instance_failures_in_a_row\{unit="app@2.service"\} [1-9]`).MatchString(out)
		waits := h.backoffWaits("app@2.service")
		return len(waits) >= 7 && sawStatus && sawMetric
	})
	waits := h.backoffWaits("app@2.service")
	t.Logf("app@2's waits, from its journal: %v", waits)
	want := []string{"100ms", "200ms", "400ms", "800ms", "1.6s", "1.6s"}
	if got := waits[:len(want)]; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("waits %v, want them to start %v", got, want)
	}
	restarts, _ := strconv.Atoi(h.show("app@2.service", "NRestarts")["NRestarts"])
	if restarts > len(waits)+2 {
		t.Errorf("%d restarts for %d logged waits: the back-off's journal record is missing from some attempts", restarts, len(waits))
	}

	h.must(h.s.WriteFile(faultFile, nil, 0o644))
	took := h.waitFor("app@2 running once fixed", 30*time.Second, func() bool {
		return h.show("app@2.service", "SubState")["SubState"] == "running"
	})
	t.Logf("app@2 fixed: running after %s (cap 1.6s)", took.Round(time.Millisecond))
	if n := h.statusBackoff("app@2.service"); n != 0 {
		t.Errorf("status still shows app@2 backing off (%d failures) while it runs", n)
	}

	// The load ends before the kill below: requests the killed process
	// holds may fail, and this test is about the back-off, not the kill.
	r := ld.Stop()
	checkLoad(t, "healthy instance during the crash loop", r, 0)

	time.Sleep(3500 * time.Millisecond) // a healthy run of RESTART_MIN_UPTIME
	h.s.MustRun(t, "kill", "-9", h.show("app@2.service", "MainPID")["MainPID"])
	h.waitFor("app@2 back after one kill", 30*time.Second, func() bool {
		return h.show("app@2.service", "SubState")["SubState"] == "running"
	})
	if st := h.backoffState("app@2.service"); st.Failures != 1 || st.Delay != 0 {
		t.Errorf("after a healthy run, a kill is failure %d with a wait of %s; want 1 and none", st.Failures, time.Duration(st.Delay))
	}

	if bad := stopWatch(); len(bad) > 0 {
		t.Errorf("app.socket left its listening state: %q", bad)
	}
}

// An operator's stop or restart of an instance that is waiting out a long
// back-off takes effect at once, not after the wait.
func TestBackoffYieldsToOperator(t *testing.T) {
	h := newHerd(t, dropIn{"app@3.service", "fault", "[Service]\nEnvironmentFile=-" + faultFile + "\n" +
		"Environment=RESTART_BACKOFF_FIRST=25s RESTART_BACKOFF_MAX=30s\n"})
	h.must(h.s.WriteFile(faultFile, []byte("APP_FAULT=fail-start\n"), 0o644))
	for _, verb := range []string{"restart", "stop"} {
		h.systemctl("start", "--no-block", "app@3.service")
		h.waitFor("app@3 backing off", 30*time.Second, func() bool { return h.statusBackoff("app@3.service") > 0 })
		start := time.Now()
		h.systemctl(verb, "--no-block", "app@3.service")
		h.waitFor("app@3 done waiting after "+verb, 10*time.Second, func() bool {
			return h.statusBackoff("app@3.service") == 0
		})
		t.Logf("%s ended a 25 s back-off after %s", verb, time.Since(start).Round(time.Millisecond))
	}
	h.waitFor("app@3 stopped", 10*time.Second, func() bool {
		st := h.show("app@3.service", "ActiveState")["ActiveState"]
		return st == "inactive" || st == "failed"
	})
}

// statusBackoff returns the failures in a row appctl status --json reports
// for unit while it backs off, 0 if it does not.
func (h *herd) statusBackoff(unit string) int {
	h.t.Helper()
	out, code := h.appctl("status", "--json")
	if code != 0 {
		h.t.Fatalf("appctl status --json: exit %d\n%s", code, out)
	}
	var st struct {
		Instances []struct {
			Unit    string `json:"unit"`
			Backoff *struct {
				Failures int `json:"failures_in_a_row"`
			} `json:"backoff"`
		} `json:"instances"`
	}
	h.must(json.Unmarshal([]byte(out), &st))
	for _, in := range st.Instances {
		if in.Unit == unit && in.Backoff != nil {
			return in.Backoff.Failures
		}
	}
	return 0
}

// backoffWaits returns the waits the back-off announced in unit's journal,
// in order ("next attempt in 400ms").
func (h *herd) backoffWaits(unit string) []string {
	var waits []string
	for _, m := range regexp.MustCompile(`failed \d+ times in a row .*; next attempt in (\S+)`).FindAllStringSubmatch(h.s.Journal("-u", unit, "-o", "cat"), -1) {
		waits = append(waits, m[1])
	}
	return waits
}

// backoffState reads the back-off record of unit.
func (h *herd) backoffState(unit string) (st struct {
	Failures int   `json:"failures_in_a_row"`
	Delay    int64 `json:"delay_ns"`
}) {
	h.t.Helper()
	data, err := h.s.ReadFile("/run/appctl/backoff/" + unit + ".json")
	if err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
	if len(data) > 0 {
		h.must(json.Unmarshal(data, &st))
	}
	return st
}

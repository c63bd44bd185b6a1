package tests

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// running lists the numbers of the instances systemd reports active.
func (h *herd) running() []int {
	h.t.Helper()
	out := h.systemctl("list-units", "app@*.service", "--state=active", "--plain", "--no-legend")
	return h.numbers(out)
}

// live lists the numbers of the instances that are starting, running,
// reloading or still draining.
func (h *herd) live() []int {
	h.t.Helper()
	out := h.systemctl("list-units", "app@*.service", "--state=active,activating,deactivating,reloading", "--plain", "--no-legend")
	return h.numbers(out)
}

// enabled lists the numbers of the instances enabled into app.target.
func (h *herd) enabled() []int {
	h.t.Helper()
	// The symlinks boot follows; appctl scale changes them without making
	// systemd reload, so app.target's loaded Wants= may lag behind.
	return h.numbers(h.s.MustRun(h.t, "sh", "-c", "ls -1 /etc/systemd/system/app.target.wants 2>/dev/null || true"))
}

func (h *herd) numbers(out string) []int {
	var ns []int
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		rest, ok := strings.CutPrefix(f[0], "app@")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSuffix(rest, ".service")); err == nil {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns
}

func upTo(n int) []int {
	var ns []int
	for i := 1; i <= n; i++ {
		ns = append(ns, i)
	}
	return ns
}

// appctl scale moves through 1, 4, 2, 0, 3 and max with systemd's own view
// matching after each step, and the count survives a reboot.
func TestAppctlScale(t *testing.T) {
	h := newHerd(t)
	for _, tc := range []struct {
		arg  string
		want int
	}{{"1", 1}, {"4", 4}, {"2", 2}, {"0", 0}, {"+3", 3}, {"max", h.cpus()}, {"-1", h.cpus() - 1}, {"3", 3}} {
		start := time.Now()
		out, code := h.appctl("scale", tc.arg)
		if code != 0 {
			t.Fatalf("appctl scale %s: exit %d\n%s", tc.arg, code, out)
		}
		t.Logf("appctl scale %s took %s", tc.arg, time.Since(start).Round(time.Millisecond))
		if got := h.running(); !slices.Equal(got, upTo(tc.want)) {
			t.Fatalf("after scale %s running %v, want 1..%d\n%s", tc.arg, got, tc.want, out)
		}
		if got := h.enabled(); !slices.Equal(got, upTo(tc.want)) {
			t.Fatalf("after scale %s enabled %v, want 1..%d", tc.arg, got, tc.want)
		}
		h.checkPlacement(tc.want)
	}
	if st := h.show("app.socket", "ActiveState")["ActiveState"]; st != "active" {
		t.Fatalf("app.socket %s", st)
	}

	if err := h.s.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The sandbox boots to basic.target; a machine boots on to
	// multi-user.target, which wants app.target when it is enabled.
	if got := h.systemctl("is-enabled", "app.target", "app.socket"); got != "enabled\nenabled\n" {
		t.Fatalf("after reboot is-enabled: %q", got)
	}
	h.systemctl("start", "app.target")
	if got := h.running(); !slices.Equal(got, upTo(3)) {
		t.Fatalf("after reboot running %v, want 1..3", got)
	}
}

// checkPlacement checks that the n running instances each run on their
// share of the CPUs, and that all of them together use every CPU.
func (h *herd) checkPlacement(n int) {
	h.t.Helper()
	cpus := h.cpus()
	used := map[string]bool{}
	for i := 1; i <= n; i++ {
		pid := h.show(fmt.Sprintf("app@%d.service", i), "MainPID")["MainPID"]
		out := h.s.MustRun(h.t, "sh", "-c", "grep -h Cpus_allowed_list /proc/"+pid+"/task/*/status | sort -u")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1 {
			h.t.Errorf("app@%d's threads run on different CPUs: %q", i, lines)
			continue
		}
		list := strings.TrimSpace(strings.TrimPrefix(lines[0], "Cpus_allowed_list:"))
		want := strconv.Itoa((i - 1) % cpus)
		if n < cpus {
			want = "" // a share of several CPUs; only checked through coverage below
		}
		if want != "" && list != want {
			h.t.Errorf("%d instances: app@%d runs on CPUs %s, want %s", n, i, list, want)
		}
		used[list] = true
	}
	if n == 1 && cpus > 1 && !used[fmt.Sprintf("0-%d", cpus-1)] {
		h.t.Errorf("a single instance does not run on every CPU: %v", used)
	}
}

func (h *herd) cpus() int {
	n, err := strconv.Atoi(strings.TrimSpace(h.s.MustRun(h.t, "nproc")))
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// Scaling 1 → 8 until every instance is ready, timed for the record.
func TestAppctlScaleToEight(t *testing.T) {
	h := newHerd(t)
	if out, code := h.appctl("scale", "1"); code != 0 {
		t.Fatal(out)
	}
	start := time.Now()
	out, code := h.appctl("scale", "8")
	took := time.Since(start)
	if code != 0 || !slices.Equal(h.running(), upTo(8)) {
		t.Fatalf("scale 8: exit %d\n%s", code, out)
	}
	t.Logf("appctl scale 1→8, all ready and recorded for boot: %s", took.Round(time.Millisecond))
}

// appctl reload under load fails no request; a reload that meets an
// instance that cannot become ready stops there, says so, and the service
// keeps serving.
func TestAppctlReload(t *testing.T) {
	h := newHerd(t)
	if out, code := h.appctl("scale", "4"); code != 0 {
		t.Fatal(out)
	}
	fresh, kept := h.load(false), h.load(true)
	fresh.Run(16, "/")
	kept.Run(16, "/")
	time.Sleep(300 * time.Millisecond)
	pids := h.mainPIDs(4)
	out, code := h.appctl("reload")
	if code != 0 {
		t.Fatalf("appctl reload: exit %d\n%s", code, out)
	}
	t.Logf("appctl reload:\n%s", out)
	for i, pid := range h.mainPIDs(4) {
		if pid == pids[i] {
			t.Errorf("app@%d still runs PID %s after reload", i+1, pid)
		}
	}
	if got := h.running(); !slices.Equal(got, upTo(4)) {
		t.Errorf("after reload running %v", got)
	}

	// Now instance 3 cannot start any more.
	h.must(h.s.WriteFile("/etc/systemd/system/app@3.service.d/fault.conf",
		[]byte("[Service]\nEnvironment=APP_FAULT=fail-start\n"), 0o644))
	h.systemctl("daemon-reload")
	out, code = h.appctl("reload", "--timeout", "20s")
	if code != 1 || !strings.Contains(out, "reload stopped at app@3.service") {
		t.Errorf("failing reload: exit %d, want 1 and the instance named\n%s", code, out)
	}
	t.Logf("failing reload:\n%s", out)
	time.Sleep(500 * time.Millisecond)
	rf, rk := fresh.Stop(), kept.Stop()
	checkLoad(t, "reloads, fresh connections", rf, 0)
	checkLoad(t, "reloads, keep-alive", rk, 0)
	if st := h.show("app@4.service", "ActiveState")["ActiveState"]; st != "active" {
		t.Errorf("app@4 is %s after the failed reload", st)
	}
	if st := h.show("app@5.service", "ActiveState")["ActiveState"]; st != "inactive" {
		t.Errorf("surge instance app@5 is %s after the failed reload", st)
	}
}

func (h *herd) mainPIDs(n int) []string {
	var pids []string
	for _, u := range instances(1, n) {
		pids = append(pids, h.show(u, "MainPID")["MainPID"])
	}
	return pids
}

// appctl status --json agrees with systemd's own view, and the table shows
// every instance.
func TestAppctlStatus(t *testing.T) {
	h := newHerd(t)
	if out, code := h.appctl("scale", "3"); code != 0 {
		t.Fatal(out)
	}
	h.s.MustRun(t, "kill", "-9", h.show("app@2.service", "MainPID")["MainPID"])
	h.waitFor("app@2 back", 10*time.Second, func() bool {
		return h.show("app@2.service", "SubState")["SubState"] == "running"
	})
	out, code := h.appctl("status", "--json")
	if code != 0 {
		t.Fatal(out)
	}
	var st struct {
		Socket struct {
			State  string   `json:"state"`
			Listen []string `json:"listen"`
		} `json:"socket"`
		Instances []struct {
			Unit     string `json:"unit"`
			State    string `json:"state"`
			PID      uint32 `json:"pid"`
			Restarts uint32 `json:"restarts"`
			RSS      uint64 `json:"rss_bytes"`
			FDs      int    `json:"fds"`
			Status   string `json:"status"`
			Enabled  bool   `json:"enabled"`
		} `json:"instances"`
		Summary struct{ Running, Enabled int } `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Socket.State != "active" || !slices.Equal(st.Socket.Listen, []string{"[::]:8080"}) {
		t.Errorf("socket %+v", st.Socket)
	}
	if st.Summary.Running != 3 || st.Summary.Enabled != 3 {
		t.Errorf("summary %+v", st.Summary)
	}
	for _, in := range st.Instances {
		p := h.show(in.Unit, "MainPID", "NRestarts", "ActiveState", "StatusText")
		if fmt.Sprint(in.PID) != p["MainPID"] || fmt.Sprint(in.Restarts) != p["NRestarts"] ||
			in.State != p["ActiveState"] || in.Status != p["StatusText"] || !in.Enabled || in.RSS == 0 || in.FDs <= 0 {
			t.Errorf("status says %+v, systemd says %v", in, p)
		}
	}
	table, _ := h.appctl("status")
	for _, want := range []string{"app.socket  active", "app@1  ", "app@2  ", "app@3  ", "3 instances: 3 running"} {
		if !strings.Contains(table, want) {
			t.Errorf("status table lacks %q:\n%s", want, table)
		}
	}
	t.Logf("appctl status:\n%s", table)
}

// Bad input is refused with exit code 2 (1 for a missing service) and a
// clear message, and changes nothing.
func TestAppctlBadInput(t *testing.T) {
	h := newHerd(t)
	if out, code := h.appctl("scale", "2"); code != 0 {
		t.Fatal(out)
	}
	before := fmt.Sprint(h.running(), h.enabled())
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"scale"}, 2, "give the number of instances"},
		{[]string{"scale", ""}, 2, "invalid count"},
		{[]string{"scale", "-3"}, 2, "would leave -1"},
		{[]string{"scale", "two"}, 2, "invalid count"},
		{[]string{"scale", "1.5"}, 2, "invalid count"},
		{[]string{"scale", "99999999999999999999"}, 2, "too large"},
		{[]string{"scale", "65"}, 2, "limit of 64"},
		{[]string{"scale", "+0"}, 2, "change of zero"},
		{[]string{"scale", "3", "4"}, 2, "takes 1 argument"},
		{[]string{"scale", "--limit", "0", "1"}, 2, "--limit"},
		{[]string{"restart", "42"}, 2, "unknown instance"},
		{[]string{"restart", "x"}, 2, "invalid instance"},
		{[]string{"reload", "--timeout", "0s"}, 2, "--timeout"},
		{[]string{"top", "--interval", "1ms"}, 2, "--interval"},
		{[]string{"status", "--jsn"}, 2, "unknown flag"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"--app", "a@b", "status"}, 2, "invalid app name"},
		{[]string{"--app", "shop", "status"}, 1, "shop.socket is not-found"},
		{[]string{"env", "APPCTL_MAX_INSTANCES=0", "appctl", "scale", "1"}, 2, "APPCTL_MAX_INSTANCES"},
	} {
		args := append([]string{"appctl"}, tc.args...)
		if tc.args[0] == "env" {
			args = tc.args
		}
		out, code := h.run(args...)
		if code != tc.code || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") > 2 {
			t.Errorf("%q: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}
	if after := fmt.Sprint(h.running(), h.enabled()); after != before {
		t.Errorf("bad input changed the herd: %s → %s", before, after)
	}
}

// A scale-up where one new instance cannot become ready stops the ones it
// started and leaves the count as it was; an instance of that count which
// is crash-looping meanwhile is left to systemd, which restarts it once
// its fault is gone.
func TestAppctlScaleFailureChangesNothing(t *testing.T) {
	h := newHerd(t, dropIn{"app@3.service", "fault", "[Service]\nEnvironment=APP_FAULT=fail-start\n"})
	if out, code := h.appctl("scale", "2"); code != 0 {
		t.Fatal(out)
	}
	out, code := h.appctl("scale", "4")
	t.Logf("appctl scale 4 with a broken app@3:\n%s", out)
	if code != 1 || !strings.Contains(out, "app@3.service") {
		t.Errorf("exit %d, want 1 naming app@3", code)
	}
	if got, en := h.running(), h.enabled(); !slices.Equal(got, upTo(2)) || !slices.Equal(en, upTo(2)) {
		t.Errorf("after the failed scale: running %v, enabled %v; want 1..2 both", got, en)
	}

	h.crashLoop(2)
	out, code = h.appctl("scale", "4")
	t.Logf("appctl scale 4 with a broken app@3 and app@2 crash-looping:\n%s", out)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if st := h.show("app@2.service", "ActiveState")["ActiveState"]; st == "inactive" || st == "failed" {
		t.Errorf("the failed scale stopped app@2, which the count it keeps wants (%s)", st)
	}
	h.s.MustRun(t, "rm", crashLoopDropIn(2))
	h.systemctl("daemon-reload")
	h.waitFor("app@2 running again", 90*time.Second, func() bool { return slices.Equal(h.running(), upTo(2)) })
	if en := h.enabled(); !slices.Equal(en, upTo(2)) {
		t.Errorf("after the second failed scale: enabled %v, want 1..2", en)
	}
}

// appctl status at 8 and 32 instances, timed for the record.
func TestAppctlStatusLatency(t *testing.T) {
	h := newHerd(t)
	for _, n := range []int{8, 32} {
		if out, code := h.appctl("scale", strconv.Itoa(n), "--limit", "32"); code != 0 {
			t.Fatal(out)
		}
		var best, worst time.Duration
		for i := range 5 {
			start := time.Now()
			out, code := h.appctl("status")
			took := time.Since(start)
			if code != 0 || !strings.Contains(out, fmt.Sprintf("%d instances: %d running", n, n)) {
				t.Fatalf("status at %d: exit %d\n%s", n, code, out)
			}
			if i == 0 || took < best {
				best = took
			}
			worst = max(worst, took)
		}
		t.Logf("appctl status at %d instances: %s best, %s worst of 5 (process start included)", n, best.Round(time.Millisecond), worst.Round(time.Millisecond))
	}
}

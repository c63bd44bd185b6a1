package tests

import (
	"strings"
	"testing"
	"time"
)

// autoscaler is the controller unit of setting spec.
func autoscaler(spec string) string { return "app-autoscale@" + spec + ".service" }

// autoscalers lists the controller units systemd reports active, except
// app-autoscale@off.service, which may still be reloading systemd after
// appctl autoscale off returned.
func (h *herd) autoscalers() string {
	h.t.Helper()
	var out []string
	for _, l := range strings.Split(h.systemctl("list-units", "app-autoscale@*.service", "--state=active", "--plain", "--no-legend"), "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, autoscaler("off")) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitRunning waits until exactly n instances run and returns how long
// that took.
func (h *herd) waitRunning(what string, n int, timeout time.Duration) time.Duration {
	h.t.Helper()
	return h.waitFor(what, timeout, func() bool { return len(h.running()) == n })
}

// Bad settings are refused with a usage error and start nothing.
func TestAutoscaleRefusesBadSettings(t *testing.T) {
	h := newHerd(t)
	h.appctl("scale", "1")
	for _, args := range [][]string{
		{"4-1"}, {"0-0"}, {"1-65"}, {"1-4", "--cpu", "0"}, {"1-4", "--cpu", "101"},
		{"1-4", "--window", "2h"}, {"1-4", "--window", "-1s"}, {"1-4", "--queue", "-3"},
		{"four"}, {"1-4", "2-5"}, {"off", "--cpu", "50"},
	} {
		out, code := h.appctl(append([]string{"autoscale"}, args...)...)
		if code != 2 {
			t.Errorf("appctl autoscale %v: exit %d, want 2 (usage)\n%s", args, code, out)
		}
	}
	if got := h.autoscalers(); got != "" {
		t.Fatalf("a refused setting started a controller:\n%s", got)
	}
	if out, _ := h.appctl("autoscale"); !strings.Contains(out, "autoscale: off") {
		t.Fatalf("appctl autoscale with autoscaling off:\n%s", out)
	}
	// The controller validates its instance name itself, too.
	if _, code := h.run("systemctl", "start", autoscaler("1-4:cpu70:window99s")); code == 0 {
		t.Fatal("a controller with a non-canonical setting started")
	}
	if got := h.running(); len(got) != 1 {
		t.Fatalf("running %v after refused settings, want 1 instance", got)
	}
}

// CPU-bound load grows the herd to MAX; when the load stops, the herd
// shrinks after the window, with no failed request throughout; off stops
// the controller and leaves the count.
func TestAutoscaleFollowsLoad(t *testing.T) {
	h := newHerd(t)
	h.appctl("scale", "1")
	// A low target, so that the herd grows even when other processes on
	// the machine leave the instance little CPU.
	spec := "1-3:cpu20:window5s"
	if out, code := h.appctl("autoscale", "1-3", "--cpu", "20", "--window", "5s"); code != 0 || !strings.Contains(out, autoscaler(spec)) {
		t.Fatalf("appctl autoscale 1-3: exit %d\n%s", code, out)
	}
	if st := h.show(autoscaler(spec), "ActiveState")["ActiveState"]; st != "active" {
		t.Fatalf("%s is %s", autoscaler(spec), st)
	}
	h.s.MustRun(t, "test", "-L", "/etc/systemd/system/app.socket.wants/"+autoscaler(spec))

	ld := h.load(false)
	ld.Run(8, "/work?ms=20")
	grew := h.waitRunning("grown to 3 under load", 3, 60*time.Second)
	t.Logf("grew from 1 to 3 instances in %s", grew.Round(time.Millisecond))
	time.Sleep(2 * time.Second) // still at MAX under load: no flapping
	if got := h.running(); len(got) != 3 {
		t.Fatalf("under load running %v, want 3", got)
	}
	checkLoad(t, "load while growing", ld.Stop(), 0)

	shrank := h.waitRunning("shrunk to 1 after the load", 1, 60*time.Second)
	t.Logf("shrank to 1 instance %s after the load stopped (window 5s)", shrank.Round(time.Millisecond))
	if got := h.enabled(); len(got) != 1 {
		t.Fatalf("enabled %v after shrinking, want 1 (the count is recorded)", got)
	}
	// The count of active units reaches 1 while the others still drain;
	// the controller records the resize once its scale has returned.
	var status string
	h.waitFor("appctl status shows the resize to 1", 60*time.Second, func() bool {
		status, _ = h.appctl("status")
		return strings.Contains(status, "last resize 3→1")
	})
	if !strings.Contains(status, "autoscale: 1 to 3 instances") {
		t.Fatalf("appctl status does not show the autoscaler's setting:\n%s", status)
	}
	if log := h.s.Journal("-u", autoscaler(spec)); !strings.Contains(log, "scale 1→") || !strings.Contains(log, "scale 3→1") {
		t.Fatalf("the controller did not log its decisions:\n%s", log)
	}

	if out, code := h.appctl("autoscale", "off"); code != 0 {
		t.Fatalf("appctl autoscale off: exit %d\n%s", code, out)
	}
	if got := h.autoscalers(); got != "" {
		t.Fatalf("after off, controllers still run:\n%s", got)
	}
	if _, code := h.run("test", "-e", "/etc/systemd/system/app.socket.wants/"+autoscaler(spec)); code == 0 {
		t.Fatal("after off, the controller is still enabled")
	}
	if got := h.running(); len(got) != 1 {
		t.Fatalf("after off running %v, want the 1 instance it had", got)
	}
}

// With MIN 0 an idle herd stops; the socket keeps listening and the next
// request is answered; the setting comes back after a reboot.
func TestAutoscaleToZeroAndBack(t *testing.T) {
	h := newHerd(t)
	h.appctl("scale", "2")
	first := "0-2:cpu70:window3s"
	if out, code := h.appctl("autoscale", "0-2", "--window", "3s"); code != 0 || !strings.Contains(out, autoscaler(first)) {
		t.Fatalf("appctl autoscale 0-2: exit %d\n%s", code, out)
	}
	// Zero means the last instance has drained, not just left "active":
	// app.socket stays "running" while app@1 is still deactivating.
	took := h.waitFor("scaled to zero when idle", 60*time.Second, func() bool {
		return len(h.live()) == 0
	})
	t.Logf("idle herd at 0 instances after %s (window 3s)", took.Round(time.Millisecond))
	h.waitFor("app.socket listening at zero instances", 10*time.Second, func() bool {
		return h.show("app.socket", "SubState")["SubState"] == "listening"
	})
	ld := h.load(false)
	start := time.Now()
	ld.One("/")
	t.Logf("first request after scale to zero answered in %s", time.Since(start).Round(time.Millisecond))
	checkLoad(t, "first request at zero instances", ld.Stop(), 0)

	// A new setting replaces the old one, and survives a reboot.
	spec := "0-2:cpu70:window1m0s"
	if out, code := h.appctl("autoscale", "0-2"); code != 0 {
		t.Fatalf("appctl autoscale 0-2: exit %d\n%s", code, out)
	}
	if got := h.autoscalers(); strings.Count(got, "app-autoscale@") != 1 || !strings.Contains(got, autoscaler(spec)) {
		t.Fatalf("after a new setting the controllers are:\n%s", got)
	}
	if _, code := h.run("test", "-e", "/etc/systemd/system/app.socket.wants/"+autoscaler(first)); code == 0 {
		t.Fatalf("the replaced setting %s is still enabled", first)
	}
	if err := h.s.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.waitFor("controller back after reboot", 30*time.Second, func() bool {
		return h.show(autoscaler(spec), "ActiveState")["ActiveState"] == "active"
	})
	if got := h.autoscalers(); strings.Count(got, "app-autoscale@") != 1 {
		t.Fatalf("after reboot the controllers are:\n%s", got)
	}
}

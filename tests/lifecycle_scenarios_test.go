package tests

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// appctl stop stops the instances and the socket; appctl start brings back
// exactly the instances enabled for boot, waiting for them or, with
// --no-block, not. An instance systemd's loaded app.target still wants,
// though a scale has disabled it (systemd reloads only after the scale),
// stays stopped.
func TestAppctlStopStart(t *testing.T) {
	h := newHerd(t)
	if out, code := h.appctl("scale", "3"); code != 0 {
		t.Fatalf("appctl scale 3: exit %d\n%s", code, out)
	}
	h.stopAll()

	// app.target's loaded Wants= names app@4, whose link is gone: the
	// state between an appctl scale 4→3 and its reload of systemd.
	h.systemctl("enable", "app@4.service")
	h.systemctl("daemon-reload")
	h.s.MustRun(t, "rm", "/etc/systemd/system/app.target.wants/app@4.service")
	if wants := h.show("app.target", "Wants")["Wants"]; !strings.Contains(wants, "app@4.service") {
		t.Fatalf("app.target's loaded Wants= lacks app@4.service: %q", wants)
	}

	out, code := h.appctl("start")
	if code != 0 {
		t.Fatalf("appctl start: exit %d\n%s", code, out)
	}
	if got := h.running(); !slices.Equal(got, upTo(3)) {
		t.Fatalf("after appctl start running %v, want 1..3\n%s", got, out)
	}
	for _, unit := range []string{"app.socket", "app.target"} {
		if st := h.show(unit, "ActiveState")["ActiveState"]; st != "active" {
			t.Fatalf("after appctl start %s is %s", unit, st)
		}
	}
	h.checkServes("8080", []string{"1", "2", "3"})

	h.stopAll()
	if out, code = h.appctl("start", "--no-block"); code != 0 || !strings.Contains(out, "not waiting") {
		t.Fatalf("appctl start --no-block: exit %d\n%s", code, out)
	}
	// Every start job, app@4's too had the target pulled it in, was queued
	// before appctl returned; an instance's job ends once it is ready.
	h.waitFor("the starts appctl start --no-block queued to finish", 60*time.Second, func() bool {
		return strings.TrimSpace(h.systemctl("list-jobs", "--no-legend")) == ""
	})
	if got := h.running(); !slices.Equal(got, upTo(3)) {
		t.Fatalf("after appctl start --no-block running %v, want 1..3", got)
	}
	h.checkServes("8080", []string{"1", "2", "3"})
}

// stopAll runs appctl stop and checks that nothing runs or listens.
func (h *herd) stopAll() {
	h.t.Helper()
	if out, code := h.appctl("stop"); code != 0 || !strings.Contains(out, "no longer listening") {
		h.t.Fatalf("appctl stop: exit %d\n%s", code, out)
	}
	if got := h.running(); len(got) != 0 {
		h.t.Fatalf("after appctl stop running %v", got)
	}
	if st := h.show("app.socket", "ActiveState")["ActiveState"]; st != "inactive" {
		h.t.Fatalf("after appctl stop app.socket is %s", st)
	}
}

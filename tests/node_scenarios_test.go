package tests

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/tests/install"
)

// nodeHerd is a herd whose instances run contrib/node/app.js under the
// contrib/node drop-in, with the machine's Node.js.
func nodeHerd(t *testing.T, dropIns ...dropIn) *herd {
	t.Helper()
	h := newHerd(t, dropIns...)
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found: install Node.js 18 or later (Debian: apt-get install nodejs)")
	}
	h.must(install.NodeApp(t.Context(), h.s, filepath.Join("..", "contrib", "node")))
	return h
}

// The Node app runs the herd like the Go one: appctl scales it, every
// instance serves the shared socket, systemctl reload keeps the process,
// and appctl reload replaces every instance under load without a failed
// request.
func TestNodeInstancesScaleAndReload(t *testing.T) {
	h := nodeHerd(t)
	h.nodeInstancesServe("Node", 3)

	pid := h.show("app@1.service", "MainPID")["MainPID"]
	h.systemctl("reload", "app@1.service")
	if after := h.show("app@1.service", "MainPID")["MainPID"]; after != pid {
		t.Errorf("systemctl reload replaced app@1 (PID %s, now %s)", pid, after)
	}

	h.reloadUnderLoad("Node", "8080", 3)
	if drained := h.s.Journal("-u", "app@2.service", "MESSAGE=drained"); !strings.Contains(drained, "drained") {
		t.Errorf("app@2 logged no drain:\n%s", h.s.Journal("-u", "app@2.service"))
	}
}

// The Node instance pings the watchdog only while its event loop turns: an
// idle instance lives on past several WatchdogSec= periods, and one whose
// loop a handler blocks is killed and replaced.
func TestNodeWatchdogReplacesBlockedEventLoop(t *testing.T) {
	h := nodeHerd(t, dropIn{"app@.service", "watchdog", "[Service]\nWatchdogSec=2s\n"})
	if out, code := h.appctl("scale", "1"); code != 0 {
		t.Fatalf("appctl scale 1: exit %d\n%s", code, out)
	}
	h.blockedLoopReplaced("Node")
	if j := h.s.Journal("_PID=1"); strings.Contains(j, "Cannot find unit for notify message") || strings.Contains(j, "reception only permitted") {
		t.Errorf("systemd dropped notifications of the Node instance:\n%s", j)
	}
}

// reloadUnderLoad runs fresh, keep-alive and long requests against port
// across two appctl reloads, and checks that none failed and that every
// one of the n instances was replaced without restarting on its own.
func (h *herd) reloadUnderLoad(what, port string, n int) {
	h.t.Helper()
	fresh, kept, slow := h.loadOn(port, false), h.loadOn(port, true), h.loadOn(port, false)
	fresh.Run(16, "/")
	kept.Run(16, "/")
	slow.Run(4, "/sleep?ms=200")
	time.Sleep(500 * time.Millisecond)
	pids := h.mainPIDs(n)
	for range 2 {
		if out, code := h.appctl("reload"); code != 0 {
			h.t.Fatalf("appctl reload: exit %d\n%s", code, out)
		}
	}
	time.Sleep(300 * time.Millisecond)
	checkLoad(h.t, what+", 2 reloads, fresh connections", fresh.Stop(), 0)
	checkLoad(h.t, what+", 2 reloads, keep-alive", kept.Stop(), 0)
	checkLoad(h.t, what+", 2 reloads, long requests", slow.Stop(), 0)
	for i, p := range h.mainPIDs(n) {
		if p == pids[i] {
			h.t.Errorf("app@%d still runs PID %s after reload", i+1, p)
		}
	}
	for _, unit := range instances(1, n) {
		if r := h.show(unit, "NRestarts")["NRestarts"]; r != "0" {
			h.t.Errorf("%s restarted on its own %s times", unit, r)
		}
	}
}

// blockedLoopReplaced checks, with one Node instance and WatchdogSec=2s,
// that an idle instance lives on past several watchdog periods and one
// whose event loop /work blocks is killed and replaced.
func (h *herd) blockedLoopReplaced(what string) {
	h.t.Helper()
	pid := h.show("app@1.service", "MainPID")["MainPID"]
	time.Sleep(5 * time.Second)
	if p := h.show("app@1.service", "MainPID", "NRestarts"); p["MainPID"] != pid || p["NRestarts"] != "0" {
		h.t.Fatalf("idle %s instance did not keep the watchdog happy: %v (was PID %s)\n%s", what, p, pid, h.s.Journal("-u", "app@1.service"))
	}
	go func() {
		// Blocks the event loop for 10 s; the watchdog fires long before.
		if resp, err := h.s.HTTPClient(false).Get("http://127.0.0.1:8080/work?ms=10000"); err == nil {
			resp.Body.Close()
		}
	}()
	replaced := h.waitFor("app@1 replaced", 30*time.Second, func() bool {
		p := h.show("app@1.service", "MainPID", "SubState")
		return p["MainPID"] != pid && p["MainPID"] != "0" && p["SubState"] == "running"
	})
	h.t.Logf("blocked %s event loop: killed by the watchdog and ready again after %s", what, replaced.Round(time.Millisecond))
	if j := h.s.Journal("-u", "app@1.service"); !strings.Contains(j, "Watchdog timeout") {
		h.t.Errorf("no watchdog timeout in the journal of app@1:\n%s", j)
	}
}

// nodeInstancesServe scales the herd to n, checks that the instances run
// node, and that all n of them answer on the shared socket.
func (h *herd) nodeInstancesServe(what string, n int) {
	h.t.Helper()
	if out, code := h.appctl("scale", strconv.Itoa(n)); code != 0 {
		h.t.Fatalf("appctl scale %d: exit %d\n%s", n, code, out)
	}
	if comm := h.s.MustRun(h.t, "ps", "-o", "comm=", "-p", h.show("app@1.service", "MainPID")["MainPID"]); strings.TrimSpace(comm) != "node" {
		h.t.Fatalf("app@1 runs %q, want node", comm)
	}
	ld := h.load(false)
	ld.Run(16, "/")
	time.Sleep(time.Second)
	r := ld.Stop()
	checkLoad(h.t, fmt.Sprintf("%d %s instances", n, what), r, 0)
	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if got := r.Instances(); !slices.Equal(got, want) {
		h.t.Fatalf("answers came from instances %q, want %q", got, want)
	}
}

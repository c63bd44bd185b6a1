package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
	"github.com/unitkit/unitkit/tests/install"
)

// expressDir is the Express example, with its node_modules from npm ci.
var expressDir = filepath.Join("..", "contrib", "express")

// nodePackage is where the packages install contrib/node for "app".
const nodePackage = "/usr/lib/app/node"

// expressHerd is a herd whose instances run contrib/express's app.js (the
// Express app through the unitkit package), installed the way its README
// says, with the Node package where the .deb puts it.
func expressHerd(t *testing.T, dropIns ...dropIn) *herd {
	t.Helper()
	needExpress(t)
	h := newHerd(t, dropIns...)
	h.must(install.Tree(t.Context(), h.s, filepath.Join("..", "contrib", "node"), nodePackage))
	h.must(install.Tree(t.Context(), h.s, expressDir, "/usr/local/lib/express-app"))
	h.must(h.s.WriteFile("/etc/systemd/system/app@.service.d/express.conf", []byte(`[Service]
ExecStart=
ExecStart=/usr/bin/node /usr/local/lib/express-app/app.js
# The package notifies through systemd-notify, a child of node.
NotifyAccess=all
# V8's JIT needs memory that is writable, then executable.
MemoryDenyWriteExecute=no
`), 0o644))
	h.systemctl("daemon-reload")
	return h
}

// needExpress fails the test when the Express app cannot run here.
func needExpress(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(expressDir, "node_modules", "express")); err != nil {
		t.Fatalf("contrib/express has no node_modules/express: run npm ci in contrib/express (.ci/run does)")
	}
}

// loadOn is h.load against another port of the sandbox.
func (h *herd) loadOn(port string, keepAlive bool) *loadtest.Load {
	return loadtest.New(loadtest.Config{URL: "http://127.0.0.1:" + port, Dial: h.s.DialContext, KeepAlive: keepAlive})
}

// A real Express app through the unitkit package: appctl scales it, every
// instance serves the shared socket, and appctl reload replaces them all
// under load without a failed request.
func TestExpressInstancesScaleAndReload(t *testing.T) {
	h := expressHerd(t)
	h.nodeInstancesServe("Express", 3)
	if resp, err := h.s.HTTPClient(false).Get("http://127.0.0.1:8080/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /readyz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	h.reloadUnderLoad("Express", "8080", 3)
	if drained := h.s.Journal("-u", "app@2.service", "MESSAGE=drained"); !strings.Contains(drained, "drained") {
		t.Errorf("app@2 logged no drain:\n%s", h.s.Journal("-u", "app@2.service"))
	}
}

// An Express handler that blocks the event loop stops the watchdog pings:
// systemd kills the instance and starts another, while an idle one lives
// on past several WatchdogSec= periods.
func TestExpressWatchdogReplacesBlockedEventLoop(t *testing.T) {
	h := expressHerd(t, dropIn{"app@.service", "watchdog", "[Service]\nWatchdogSec=2s\n"})
	if out, code := h.appctl("scale", "1"); code != 0 {
		t.Fatalf("appctl scale 1: exit %d\n%s", code, out)
	}
	h.blockedLoopReplaced("Express")
}

// The migration a PM2 user makes, with an Express app written for PM2 and
// left unchanged (its own ecosystem.config.js: 2 instances, wait_ready,
// kill_timeout, env with PORT=3000), in a user's home: install the
// package, appctl import, and the app serves port 3000 from the socket
// systemd owns, through two appctl reloads under load without a failed
// request.
func TestPM2ExpressAppImportedUnchanged(t *testing.T) {
	needExpress(t)
	h := newPackageHost(t)
	if out, code := h.aptInstall(buildDeb(t, release{"app", "1.0.0", "./cmd/app"})); code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	h.s.MustRun(t, "useradd", "--create-home", "alice")
	h.must(install.Tree(t.Context(), h.s, expressDir, "/home/alice/express-app"))
	h.s.MustRun(t, "chown", "-R", "alice:alice", "/home/alice/express-app")
	h.s.MustRun(t, "chmod", "0755", "/home/alice")

	out, code := h.appctl("import", "/home/alice/express-app/ecosystem.config.js")
	t.Logf("appctl import:\n%s", out)
	if code != 0 {
		t.Fatalf("appctl import: exit %d", code)
	}
	if listen := h.show("app.socket", "Listen")["Listen"]; !strings.Contains(listen, ":3000 (Stream)") {
		t.Fatalf("app.socket listens on %q, want port 3000", listen)
	}
	if out, code := h.appctl("status"); code != 0 || !strings.Contains(out, "app@2") {
		t.Fatalf("appctl status: exit %d\n%s", code, out)
	}
	ld := h.loadOn("3000", false)
	ld.Run(8, "/")
	time.Sleep(time.Second)
	r := ld.Stop()
	checkLoad(t, "PM2 app, 2 instances", r, 0)
	if got := r.Instances(); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("answers came from NODE_APP_INSTANCE %q, want 1 and 2", got)
	}
	cmdline := h.s.MustRun(t, "cat", "/proc/"+h.show("app@1.service", "MainPID")["MainPID"]+"/cmdline")
	if !strings.Contains(cmdline, "/home/alice/express-app/pm2-app.js") {
		t.Fatalf("app@1 runs %q, want the app's pm2-app.js", cmdline)
	}
	h.reloadUnderLoad("PM2 app", "3000", 2)
	if j := h.s.Journal("-u", "app@1.service"); !strings.Contains(j, "listening on port 3000") {
		t.Errorf("app@1 did not run the app's own listen callback:\n%s", j)
	}
}

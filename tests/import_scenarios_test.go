package tests

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/tests/install"
)

// importApp is where the scenario puts contrib/node's app: under /home,
// which the instances' sandbox hides unless the import grants it.
const importApp = "/home/deploy/app"

// importArgs and importTricky go through ExecStart= and Environment=
// quoting and must reach the process unchanged.
var (
	importArgs   = []string{"--title=a \"b\"", "50%", "$HOME", "", "x y", ";"}
	importTricky = "a \"b\" 50% $HOME \\ end\ttab"
)

// importEcosystem is the PM2 ecosystem file of the scenario, with n
// instances.
func importEcosystem(n int) string {
	return fmt.Sprintf(`// As a PM2 user would have it (pm2 start ecosystem.config.js).
module.exports = {
  apps: [{
    name: 'node-app',
    script: 'app.js',
    args: %s,
    instances: %d,
    exec_mode: 'cluster',
    wait_ready: true,
    listen_timeout: 8000,
    kill_timeout: 4000,
    max_memory_restart: '200M',
    max_restarts: 5,
    out_file: '/var/log/node-app.log',
    env: { PORT: 3000, TRICKY: %q },
  }],
};
`, jsArray(importArgs), n, importTricky)
}

func jsArray(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = fmt.Sprintf("%q", w)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// importHerd is a herd running two Go instances, with unitkit's Node
// package where the .deb installs it and contrib/node's app under /home.
func importHerd(t *testing.T) *herd {
	t.Helper()
	h := newHerd(t)
	h.must(install.Tree(t.Context(), h.s, filepath.Join("..", "contrib", "node"), nodePackage))
	h.must(install.Tree(t.Context(), h.s, filepath.Join("..", "contrib", "node"), importApp))
	h.s.MustRun(t, "mkdir", "-p", importApp+"/uploads")
	h.s.MustRun(t, "chmod", "0751", "/home/deploy")
	h.must(h.s.WriteFile(importApp+"/ecosystem.config.js", []byte(importEcosystem(3)), 0o644))
	if out, code := h.appctl("scale", "2"); code != 0 {
		t.Fatalf("appctl scale 2: exit %d\n%s", code, out)
	}
	return h
}

// appctl import of a PM2 ecosystem file: refused while PM2 holds the
// port, nothing written on --dry-run, then the drop-ins pass
// systemd-analyze verify, the socket moves to the app's port, the Go
// instances are replaced by three Node ones that serve it from under
// /home, with their arguments and environment exactly as written; a
// second import replaces them one by one and scales down.
func TestImportEcosystemFile(t *testing.T) {
	h := importHerd(t)
	eco := importApp + "/ecosystem.config.js"
	dropIns := []string{"/etc/systemd/system/app@.service.d/50-import.conf", "/etc/systemd/system/app.socket.d/50-import.conf"}

	// PM2 still runs the app on port 3000.
	h.s.MustRun(t, "systemd-run", "--unit", "fake-pm2", "/usr/bin/node", "-e",
		`process.title = 'PM2 v7.0.4: God Daemon (/root/.pm2)'; require('node:net').createServer().listen(3000);`)
	h.waitFor("the stand-in for PM2 to listen", 10*time.Second, func() bool { return h.dials("3000") })
	out, code := h.appctl("import", eco, "--writable", "uploads")
	if code != 1 || !strings.Contains(out, "PM2") || !strings.Contains(out, "pm2 delete node-app") {
		t.Fatalf("import while PM2 holds the port: exit %d, want 1 naming PM2:\n%s", code, out)
	}
	h.noFiles(dropIns...)
	h.systemctl("stop", "fake-pm2")

	out, code = h.appctl("import", eco, "--writable", "uploads", "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run: nothing was written") || !strings.Contains(out, "ListenStream=3000") {
		t.Fatalf("import --dry-run: exit %d\n%s", code, out)
	}
	h.noFiles(dropIns...)

	out, code = h.appctl("import", eco, "--writable", "uploads")
	t.Logf("appctl import:\n%s", out)
	if code != 0 {
		t.Fatalf("appctl import: exit %d\n%s\n%s", code, out, h.s.Journal("-u", "app@1.service", "-n", "40"))
	}
	for _, want := range []string{"max_restarts", "fails the shared socket", "out_file", "appctl logs", "PM2's from 0",
		"ProtectHome=tmpfs", "BindReadOnlyPaths=" + importApp, "StateDirectory=app/uploads"} {
		if !strings.Contains(out, want) {
			t.Errorf("import's report lacks %q", want)
		}
	}
	h.checkImported(3)
	h.checkServes("3000", []string{"1", "2", "3"})
	if h.dials("8080") {
		t.Error("the socket still listens on 8080")
	}

	// A second import, no port change: rolling replacement, then scale 2.
	h.must(h.s.WriteFile(eco, []byte(importEcosystem(2)), 0o644))
	pids := h.mainPIDs(2)
	out, code = h.appctl("import", eco, "--writable", "uploads")
	if code != 0 || strings.Contains(out, "moves from") {
		t.Fatalf("second import: exit %d\n%s", code, out)
	}
	for i, p := range h.mainPIDs(2) {
		if p == pids[i] {
			t.Errorf("app@%d still runs PID %s after the second import", i+1, p)
		}
	}
	if state := h.show("app@3.service", "ActiveState")["ActiveState"]; state != "inactive" {
		t.Errorf("app@3 is %s after importing 2 instances", state)
	}
	h.checkServes("3000", []string{"1", "2"})
}

// checkImported checks the drop-ins and n running Node instances.
func (h *herd) checkImported(n int) {
	h.t.Helper()
	if out, code := h.run("systemd-analyze", "verify", "app@1.service", "app.socket"); code != 0 || strings.Contains(out, "50-import.conf") {
		h.t.Errorf("systemd-analyze verify: exit %d\n%s", code, out)
	}
	if listen := h.show("app.socket", "Listen")["Listen"]; !strings.Contains(listen, ":3000") {
		h.t.Errorf("app.socket listens on %s, want port 3000", listen)
	}
	for i, unit := range instances(1, n) {
		p := h.show(unit, "ActiveState", "MainPID", "MemoryMax", "TimeoutStopUSec", "ProtectHome")
		if p["ActiveState"] != "active" || p["MemoryMax"] != fmt.Sprint(200<<20) || p["TimeoutStopUSec"] != "14s" || p["ProtectHome"] != "tmpfs" {
			h.t.Errorf("%s: %v", unit, p)
			continue
		}
		argv := h.procList(p["MainPID"], "cmdline")
		want := append([]string{"/usr/bin/node", importApp + "/app.js"}, importArgs...)
		if !slices.Equal(argv, want) {
			h.t.Errorf("%s runs %q, want %q", unit, argv, want)
		}
		env := h.procList(p["MainPID"], "environ")
		for _, kv := range []string{"TRICKY=" + importTricky, "PORT=3000", fmt.Sprintf("NODE_APP_INSTANCE=%d", i+1),
			"NODE_OPTIONS=--require " + nodePackage + "/preload.js", "UNITKIT_WAIT_READY=1", "DRAIN_TIMEOUT=4s"} {
			if !slices.Contains(env, kv) {
				h.t.Errorf("%s lacks %q in its environment %q", unit, kv, env)
			}
		}
	}
	if out := h.s.MustRun(h.t, "stat", "-L", "-c", "%U %a", "/var/lib/app/uploads"); !strings.HasPrefix(out, "app ") {
		h.t.Errorf("/var/lib/app/uploads: %s, want it owned by the dynamic user app", out)
	}
}

// procList reads /proc/PID/FILE in the sandbox, split at NUL.
func (h *herd) procList(pid, file string) []string {
	h.t.Helper()
	data, err := h.s.ReadFile("/proc/" + pid + "/" + file)
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
}

// dials reports whether something listens on the port in the sandbox.
func (h *herd) dials(port string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := h.s.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
	if err == nil {
		c.Close()
	}
	return err == nil
}

// noFiles fails the test if any of the files exists in the sandbox.
func (h *herd) noFiles(paths ...string) {
	h.t.Helper()
	for _, p := range paths {
		if _, err := h.s.ReadFile(p); err == nil {
			h.t.Errorf("%s was written", p)
		}
	}
}

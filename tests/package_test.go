package tests

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitkit/unitkit/tests/sandbox"
)

// release is a package built by make package's script for the tests.
type release struct{ app, version, worker string }

var (
	builtMu sync.Mutex
	built   = map[builtKey]string{}
)

// builtKey names a package built for the tests: a release in a format.
type builtKey struct {
	r      release
	format string
}

// buildDeb builds (once per test binary) the amd64 .deb of r and returns
// its path on the host.
func buildDeb(t *testing.T, r release) string { return buildPackage(t, r, "deb") }

// buildPackage builds (once per test binary) r's amd64 package in format
// (deb or rpm) and returns its path on the host.
func buildPackage(t *testing.T, r release, format string) string {
	t.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	key := builtKey{r, format}
	if p, ok := built[key]; ok {
		return p
	}
	dist := t.TempDir()
	if err := buildPackages(dist, r, "amd64", format, "1700000000"); err != nil {
		t.Fatal(err)
	}
	pkgs, _ := filepath.Glob(filepath.Join(dist, "*."+format))
	if len(pkgs) != 1 {
		t.Fatalf("built %v, want one .%s", pkgs, format)
	}
	// t.TempDir goes with the test; keep the package for later tests in
	// the directory TestMain removes.
	keep, err := os.MkdirTemp(packageCache, format)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(keep, filepath.Base(pkgs[0]))
	if err := os.Rename(pkgs[0], p); err != nil {
		t.Fatal(err)
	}
	built[key] = p
	return p
}

func buildPackages(dist string, r release, archs, formats, epoch string) error {
	cmd := exec.Command("../packaging/build.sh")
	cmd.Env = append(os.Environ(), "APP="+r.app, "VERSION="+r.version, "ARCHS="+archs, "FORMATS="+formats,
		"DIST="+dist, "SOURCE_DATE_EPOCH="+epoch, "WORKER="+r.worker)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %+v: %w\n%s", r, err, out)
	}
	return nil
}

// newPackageHost boots a sandbox that behaves like a real host for
// packages: container images ship /usr/sbin/policy-rc.d to forbid
// maintainer scripts from starting services, which a real host has not.
// Rebuilding the man-db index after every dpkg run only costs time here.
func newPackageHost(t *testing.T) *herd {
	h := &herd{t: t, s: sandbox.New(t)}
	h.s.MustRun(t, "rm", "-f", "/usr/sbin/policy-rc.d", "/var/lib/man-db/auto-update")
	return h
}

// install copies a package into the sandbox and installs it with apt-get.
func (h *herd) aptInstall(deb string, extra ...string) (string, int) {
	h.t.Helper()
	inside := "/tmp/" + filepath.Base(deb)
	h.must(h.s.CopyFile(deb, inside, 0o644))
	args := append([]string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends"}, extra...)
	start := time.Now()
	defer func() {
		h.t.Logf("apt-get install %s: %s", filepath.Base(deb), time.Since(start).Round(time.Millisecond))
	}()
	return h.run(append(args, inside)...)
}

// versions asks the socket n times which version answers.
func (h *herd) versions(n int) map[string]int {
	h.t.Helper()
	c := h.s.HTTPClient(false)
	seen := map[string]int{}
	for range n {
		resp, err := c.Get("http://127.0.0.1:8080/")
		if err != nil {
			h.t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen[resp.Header.Get("X-Version")+"/"+resp.Header.Get("X-Instance")]++
	}
	return seen
}

var inodeRE = regexp.MustCompile(`ino:(\d+)`)

// socketInode identifies the listening socket on port 8080.
func (h *herd) socketInode() string {
	h.t.Helper()
	m := inodeRE.FindStringSubmatch(h.s.MustRun(h.t, "ss", "-Hltne", "sport = :8080"))
	if m == nil {
		h.t.Fatal("nothing listens on 8080")
	}
	return m[1]
}

// The .deb through its whole life in a real systemd: install, upgrade under
// load without a failed request, a broken upgrade that stops and leaves the
// service serving, remove, purge — and nothing of it left on disk.
func TestPackageLifecycle(t *testing.T) {
	h := newPackageHost(t)
	v1 := buildDeb(t, release{"app", "1.0.0", "./cmd/app"})
	v2 := buildDeb(t, release{"app", "1.1.0", "./cmd/app"})
	broken := buildDeb(t, release{"app", "1.2.0", "./tests/brokenworker"})
	began := time.Now()
	defer func() { t.Logf("package lifecycle in the sandbox: %s", time.Since(began).Round(time.Millisecond)) }()

	out, code := h.aptInstall(v1)
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	if got := h.systemctl("is-enabled", "app.socket"); got != "enabled\n" {
		t.Errorf("app.socket is %q after install", got)
	}
	if v := h.versions(1); v["1.0.0/1"] != 1 {
		t.Fatalf("first request after install answered by %v", v)
	}
	if out, code := h.appctl("scale", "4"); code != 0 {
		t.Fatalf("appctl scale 4: exit %d\n%s", code, out)
	}
	if failed := h.systemctl("list-units", "--failed", "--plain", "--no-legend"); failed != "" {
		t.Errorf("failed units after install: %s", failed)
	}
	// contrib/prometheus's timer ships disabled and stopped, until an
	// operator enables it; enabled, it must outlive the upgrades, stop on
	// remove and leave nothing after purge (removeAndPurge).
	for unit, state := range map[string]string{"app-metrics.timer": "disabled", "app-metrics.service": "static"} {
		if p := h.show(unit, "UnitFileState", "ActiveState"); p["UnitFileState"] != state || p["ActiveState"] != "inactive" {
			t.Errorf("after install %s is %v, want it %s and inactive", unit, p, state)
		}
	}
	h.s.MustRun(t, "mkdir", "-p", "/var/lib/prometheus/node-exporter")
	h.systemctl("enable", "--now", "app-metrics.timer")
	h.waitFor("app-metrics.service writing app.prom", 10*time.Second, func() bool {
		_, err := h.s.ReadFile("/var/lib/prometheus/node-exporter/app.prom")
		return err == nil
	})
	// Both settings must outlive an upgrade: the memory limit in the
	// conffile, and the autoscaler (MIN = MAX, so that it keeps the count
	// the checks below expect).
	h.s.MustRun(t, "sh", "-c", "echo MEMORY_LIMIT=256M >>/etc/default/app")
	if out, code := h.appctl("autoscale", "4-4"); code != 0 {
		t.Fatalf("appctl autoscale 4-4: exit %d\n%s", code, out)
	}
	controller := autoscaler("4-4:cpu70:window1m0s")
	controllerPID := h.show(controller, "MainPID")["MainPID"]

	inode := h.socketInode()
	fresh, kept := h.load(false), h.load(true)
	fresh.Run(16, "/")
	kept.Run(16, "/")
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	out, code = h.aptInstall(v2)
	t.Logf("upgrade 1.0.0 → 1.1.0 under load took %s:\n%s", time.Since(start).Round(time.Millisecond), lastLines(out, 8))
	if code != 0 {
		t.Fatalf("upgrade: exit %d", code)
	}
	for version := range h.versions(40) {
		if !strings.HasPrefix(version, "1.1.0/") {
			t.Errorf("after the upgrade an instance answers %s", version)
		}
	}
	if got := h.running(); !slices.Equal(got, upTo(4)) || !slices.Equal(h.enabled(), upTo(4)) {
		t.Errorf("after the upgrade running %v, enabled %v; want 1..4", got, h.enabled())
	}
	if now := h.socketInode(); now != inode {
		t.Errorf("the listening socket changed during the upgrade: inode %s → %s", inode, now)
	}
	h.waitJournal("app@1.service", "MEMORY_LIMIT=268435456")
	if p := h.show("app-metrics.timer", "UnitFileState", "ActiveState"); p["UnitFileState"] != "enabled" || p["ActiveState"] != "active" {
		t.Errorf("after the upgrade app-metrics.timer is %v, want it enabled and active as the operator left it", p)
	}
	if p := h.show(controller, "ActiveState", "MainPID", "UnitFileState"); p["ActiveState"] != "active" || p["MainPID"] == controllerPID || p["UnitFileState"] != "enabled" {
		t.Errorf("after the upgrade the autoscaler is %v (was PID %s): want it active, restarted onto the new binary, enabled", p, controllerPID)
	}

	// An instance that crash-loops during the broken upgrade (it crashed,
	// and restarts into the broken binary) must not keep the installation
	// waiting: on systemd 252 a start job of app.target waits across its
	// restarts.
	h.crashLoop(4)
	out, code = h.aptInstall(broken)
	t.Logf("upgrade to the broken 1.2.0:\n%s", lastLines(out, 8))
	h.s.MustRun(t, "rm", crashLoopDropIn(4))
	h.systemctl("daemon-reload")
	if code == 0 || !strings.Contains(out, "did not become ready") {
		t.Errorf("broken upgrade: exit %d, want a failure that says the new version did not become ready", code)
	}
	for version := range h.versions(40) {
		if !strings.HasPrefix(version, "1.1.0/") {
			t.Errorf("after the broken upgrade an instance answers %s", version)
		}
	}
	rf, rk := fresh.Stop(), kept.Stop()
	checkLoad(t, "upgrades, fresh connections", rf, 0)
	checkLoad(t, "upgrades, keep-alive", rk, 0)
	// Idle now. The broken build, which never set O_NONBLOCK on the shared
	// socket, must not have left the instances stuck in accept(): each
	// would then drain until the stop timeout (40 s each).
	start = time.Now()
	out, code = h.aptInstall(v2, "--allow-downgrades")
	if code != 0 {
		t.Fatalf("going back to 1.1.0: exit %d\n%s", code, out)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("going back to 1.1.0 at idle took %s: an instance hung while draining\n%s", took, out)
	}
	h.waitFor("app@4 back from its crash loop", 30*time.Second, func() bool {
		return h.show("app@4.service", "SubState")["SubState"] == "running"
	})

	h.removeAndPurge()
}

// crashLoopDropIn makes instance n fail at every start.
func crashLoopDropIn(n int) string {
	return fmt.Sprintf("/etc/systemd/system/app@%d.service.d/crash-loop.conf", n)
}

// crashLoop makes instance n crash-loop from its next start, restarts it
// and waits for its first automatic restart.
func (h *herd) crashLoop(n int) {
	h.t.Helper()
	unit := fmt.Sprintf("app@%d.service", n)
	h.must(h.s.WriteFile(crashLoopDropIn(n), []byte("[Service]\nEnvironment=APP_FAULT=fail-start\n"), 0o644))
	h.systemctl("daemon-reload")
	restarts := h.show(unit, "NRestarts")["NRestarts"]
	h.systemctl("restart", "--no-block", unit)
	h.waitFor(unit+" crash-looping", 30*time.Second, func() bool {
		return h.show(unit, "NRestarts")["NRestarts"] != restarts
	})
}

// removeAndPurge removes the package, checks what stays, purges it and
// checks that nothing of it is left.
func (h *herd) removeAndPurge() {
	t := h.t
	if out, code := h.run("apt-get", "remove", "-y", "app"); code != 0 {
		t.Fatalf("remove: exit %d\n%s", code, out)
	}
	for _, unit := range []string{"app.socket", "app@1.service", "app@4.service", "app-metrics.timer"} {
		if st := h.show(unit, "ActiveState")["ActiveState"]; st != "inactive" {
			t.Errorf("after remove %s is %s", unit, st)
		}
	}
	if _, err := h.s.ReadFile("/usr/bin/app"); err == nil {
		t.Error("after remove /usr/bin/app is still there")
	}
	if _, err := h.s.ReadFile("/etc/default/app"); err != nil {
		t.Errorf("remove took the conffile: %v", err)
	}
	// What appctl import writes from a PM2 ecosystem file: configuration
	// the purge must take too.
	h.must(h.s.WriteFile("/etc/systemd/system/app@.service.d/50-import.conf", []byte("[Service]\nEnvironment=NODE_ENV=production\n"), 0o644))
	h.must(h.s.WriteFile("/etc/systemd/system/app.socket.d/50-import.conf", []byte("[Socket]\nListenStream=\nListenStream=3000\n"), 0o644))
	if out, code := h.run("apt-get", "purge", "-y", "app"); code != 0 {
		t.Fatalf("purge: exit %d\n%s", code, out)
	}
	if out, _ := h.run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "app"); strings.HasPrefix(out, "ii") || strings.HasPrefix(out, "rc") {
		t.Errorf("dpkg still knows app after purge: %q", out)
	}
	if out, _ := h.run("getent", "group", "app-operators"); out != "" {
		t.Errorf("group left after purge: %s", out)
	}
	changed, err := h.s.Changed()
	if err != nil {
		t.Fatal(err)
	}
	ours := regexp.MustCompile(`(^|/)app([.@-]|ctl|$)|app-operators`)
	for _, f := range changed {
		if ours.MatchString(f) && !strings.HasPrefix(f, "/var/lib/dpkg/") && !strings.HasPrefix(f, "/var/log/") &&
			!strings.HasPrefix(f, "/var/cache/") {
			t.Errorf("left on disk after purge: %s", f)
		}
	}
}

// A service packaged under another name (APP=shop) gets its own package,
// units, command and operator group, and works end to end.
func TestPackageRenamed(t *testing.T) {
	h := newPackageHost(t)
	deb := buildDeb(t, release{"shop", "2.0.0", "./cmd/app"})
	if out, code := h.aptInstall(deb); code != 0 {
		t.Fatalf("install shop: exit %d\n%s", code, out)
	}
	out, code := h.run("shopctl", "scale", "2")
	if code != 0 {
		t.Fatalf("shopctl scale 2: exit %d\n%s", code, out)
	}
	if got := h.systemctl("is-active", "shop.socket", "shop@1.service", "shop@2.service"); got != "active\nactive\nactive\n" {
		t.Errorf("shop units: %q", got)
	}
	if v := h.versions(10); len(v) == 0 {
		t.Error("no answer from shop")
	} else {
		for k := range v {
			if !strings.HasPrefix(k, "2.0.0/") {
				t.Errorf("shop answered %s", k)
			}
		}
	}
	rule, err := h.s.ReadFile("/usr/share/polkit-1/rules.d/50-shop-operators.rules")
	if err != nil || !strings.Contains(string(rule), `"shop-operators"`) || strings.Contains(string(rule), `"app.socket"`) {
		t.Errorf("polkit rule for shop: %v\n%s", err, rule)
	}
	if out, _ := h.run("getent", "group", "shop-operators"); out == "" {
		t.Error("no shop-operators group")
	}
}

// Two builds of the same tree with the same SOURCE_DATE_EPOCH are identical,
// byte for byte, for every architecture and format; lintian finds no error
// and no warning without an override; rpm shows the right metadata.
func TestPackagesReproducibleAndClean(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every package twice")
	}
	for _, tool := range []string{"lintian", "rpm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Geteuid() != 0 {
				t.Skipf("package checks skipped: %s is not installed (apt-get install %s; CI installs it)", tool, tool)
			}
			t.Fatalf("%s is not installed (apt-get install %s); .ci/run installs it", tool, tool)
		}
	}
	r := release{"app", "1.0.0", "./cmd/app"}
	a, b := t.TempDir(), t.TempDir()
	for _, dist := range []string{a, b} {
		if err := buildPackages(dist, r, "amd64 arm64", "deb rpm", "1700000000"); err != nil {
			t.Fatal(err)
		}
	}
	pkgs, _ := filepath.Glob(filepath.Join(a, "app*"))
	if len(pkgs) != 4 {
		t.Fatalf("built %v, want 4 packages", pkgs)
	}
	for _, p := range pkgs {
		sa, sb := sum(t, p), sum(t, filepath.Join(b, filepath.Base(p)))
		if sa != sb {
			t.Errorf("%s differs between two builds", filepath.Base(p))
		}
		fi, _ := os.Stat(p)
		t.Logf("%s: %d bytes, sha256 %s", filepath.Base(p), fi.Size(), sa[:16])
	}
	deb := filepath.Join(a, "app_1.0.0-1_amd64.deb")
	out, err := exec.Command("lintian", "--fail-on", "error,warning", deb).CombinedOutput()
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, out)
	}
	rpm := filepath.Join(a, "app-1.0.0-1.x86_64.rpm")
	for args, want := range map[string]string{
		"--configfiles": "/etc/default/app",
		"--scripts":     "appctl reload",
		"-l":            "/usr/lib/systemd/system/app@.service",
		"--requires":    "systemd",
	} {
		out, err := exec.Command("rpm", "-qp", args, rpm).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("rpm -qp %s: %v, want %q in:\n%s", args, err, want, out)
		}
	}
}

func sum(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

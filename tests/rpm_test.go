package tests

import (
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
)

// rpmDB is the sandbox's own RPM database: Debian's rpm keeps one per user
// by default (~/.rpmdb); the tests name the system location RPM-based
// distributions use.
const rpmDB = "/var/lib/rpm"

// buildRPM builds (once per test binary) the x86_64 .rpm of r and returns
// its path on the host.
func buildRPM(t *testing.T, r release) string { return buildPackage(t, r, "rpm") }

// rpm runs Debian's rpm in the sandbox on the sandbox's own database and
// returns its combined output and exit code.
func (h *herd) rpm(args ...string) (string, int) {
	h.t.Helper()
	return h.run(append([]string{"rpm", "--dbpath", rpmDB}, args...)...)
}

// rpmTransaction copies a package into the sandbox and installs or upgrades
// it with rpm (mode "-i" or "-U", then extra flags), and logs how long it
// took.
//
// --nodeps: the package requires systemd and /bin/sh, which the sandbox
// has, but from dpkg: the RPM database of a Debian root knows no package
// that provides them. --force-debian: without it Debian's rpm warns, at
// every install, that packages belong to dpkg on Debian.
func (h *herd) rpmTransaction(mode, pkg string, extra ...string) (string, int, time.Duration) {
	h.t.Helper()
	inside := "/tmp/" + filepath.Base(pkg)
	h.must(h.s.CopyFile(pkg, inside, 0o644))
	args := append([]string{mode, "--nodeps", "--force-debian"}, extra...)
	start := time.Now()
	out, code := h.rpm(append(args, inside)...)
	took := time.Since(start)
	h.t.Logf("rpm %s %s: exit %d in %s", mode, filepath.Base(pkg), code, took.Round(time.Millisecond))
	return out, code, took
}

// missingDirs returns the service's own directories above the paths the
// packages list (rpm -qlp) that do not exist in the sandbox yet: the ones
// installing them creates, whether the packages list them or not. Shared
// directories (/usr/share/licenses, fish's vendor_completions.d) are left
// out: on an RPM distribution they belong to its base packages, here to
// no package, so rpm creates them and may leave them.
func (h *herd) missingDirs(pkgs ...string) []string {
	h.t.Helper()
	seen := map[string]bool{}
	for _, pkg := range pkgs {
		out, err := exec.Command("rpm", "-qlp", pkg).CombinedOutput()
		if err != nil {
			h.t.Fatalf("rpm -qlp %s: %v\n%s", pkg, err, out)
		}
		for _, f := range strings.Fields(string(out)) {
			for d := filepath.Dir(f); d != "/"; d = filepath.Dir(d) {
				if ofApp.MatchString(d) {
					seen[d] = true
				}
			}
		}
	}
	dirs := slices.Sorted(maps.Keys(seen))
	return h.existing(dirs, false)
}

// existing returns those of paths that exist in the sandbox or, with want
// false, those that do not.
func (h *herd) existing(paths []string, want bool) []string {
	h.t.Helper()
	test := `for p; do [ -e "$p" ] && echo "$p"; done; exit 0`
	if !want {
		test = `for p; do [ -e "$p" ] || echo "$p"; done; exit 0`
	}
	out := h.s.MustRun(h.t, append([]string{"sh", "-c", test, "sh"}, paths...)...)
	return strings.Fields(out)
}

// rpmMajor returns the major version of the sandbox's rpm.
func (h *herd) rpmMajor() int {
	h.t.Helper()
	out := h.s.MustRun(h.t, "rpm", "--version")
	var major int
	if _, err := fmt.Sscanf(out, "RPM version %d.", &major); err != nil {
		h.t.Fatalf("rpm --version: %q: %v", out, err)
	}
	return major
}

// rpmFiles lists the paths the installed package owns (rpm -ql).
func (h *herd) rpmFiles(pkg string) []string {
	h.t.Helper()
	out, code := h.rpm("-ql", pkg)
	if code != 0 {
		h.t.Fatalf("rpm -ql %s: exit %d\n%s", pkg, code, out)
	}
	return strings.Fields(out)
}

// checkRPMFiles fails the test unless every path the installed package
// lists exists, is owned by that package (rpm -qf) and is as the package
// shipped it (rpm -V), apart from the conffiles in edited, which must be
// reported as changed config files.
func (h *herd) checkRPMFiles(nevra string, edited ...string) {
	h.t.Helper()
	files := h.rpmFiles("app")
	if len(files) == 0 {
		h.t.Fatal("rpm -ql app lists nothing")
	}
	if out, code := h.run(append([]string{"ls", "-d"}, files...)...); code != 0 {
		h.t.Errorf("files the package lists are missing:\n%s", out)
	}
	out, code := h.rpm(append([]string{"-qf", "--qf", "%{NEVRA}\n"}, files...)...)
	owners := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(owners) != len(files) {
		h.t.Errorf("rpm -qf of the %d files the package lists: exit %d\n%s", len(files), code, out)
	}
	for i, owner := range owners {
		if i < len(files) && owner != nevra {
			h.t.Errorf("%s is owned by %q, want %s", files[i], owner, nevra)
		}
	}
	// -V checks dependencies too, which the sandbox's RPM database cannot
	// satisfy (see rpmTransaction).
	out, _ = h.rpm("-V", "--nodeps", "app")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		switch {
		case line == "":
		case len(f) == 3 && f[1] == "c" && slices.Contains(edited, f[2]):
			// An edited conffile: its size, digest and time differ.
		default:
			h.t.Errorf("rpm -V app: %s", line)
		}
	}
}

// runLoad puts fresh and keep-alive load on the socket while fn runs, and
// returns both results.
func (h *herd) runLoad(fn func()) (fresh, kept loadtest.Result) {
	h.t.Helper()
	f, k := h.load(false), h.load(true)
	f.Run(16, "/")
	k.Run(16, "/")
	time.Sleep(300 * time.Millisecond)
	fn()
	return f.Stop(), k.Stop()
}

// rpmSave is where rpm -e keeps /etc/default/app when the operator has
// edited it (%config(noreplace)), as RPM does for every edited conffile.
const rpmSave = "/etc/default/app.rpmsave"

// ofApp matches the paths, unit names and group of the service app (as
// removeAndPurge's pattern does for the .deb).
var ofApp = regexp.MustCompile(`(^|/)app([.@-]|ctl|$)|app-operators`)

// The .rpm through its whole life in a real systemd, installed with
// Debian's rpm: the host's preset policy on install (Fedora's default,
// disable), the socket started by the operator, an upgrade under load with
// no failed request and the socket untouched, a broken upgrade that fails
// and leaves the old instances serving, a roll-back, and an erase that
// leaves nothing behind.
func TestRPMLifecycle(t *testing.T) {
	h := newPackageHost(t)
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatal("rpm is not installed (apt-get install rpm); .ci/run installs it")
	}
	v1 := buildRPM(t, release{"app", "1.0.0", "./cmd/app"})
	v2 := buildRPM(t, release{"app", "1.1.0", "./cmd/app"})
	broken := buildRPM(t, release{"app", "1.2.0", "./tests/brokenworker"})
	began := time.Now()
	defer func() { t.Logf("RPM lifecycle in the sandbox: %s", time.Since(began).Round(time.Millisecond)) }()

	created := h.missingDirs(v1, v2, broken)
	// Fedora's and RHEL's default policy: no unit is enabled on install
	// unless a preset file says so.
	h.must(h.s.WriteFile("/usr/lib/systemd/system-preset/99-default-disable.preset", []byte("disable *\n"), 0o644))
	if out, code := h.rpm("--initdb"); code != 0 {
		t.Fatalf("rpm --initdb: exit %d\n%s", code, out)
	}

	out, code, _ := h.rpmTransaction("-i", v1)
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	if got, _ := h.run("systemctl", "is-enabled", "app.socket", "app.target"); got != "disabled\ndisabled\n" {
		t.Errorf("after install under a disabling preset app.socket and app.target are %q, want disabled", got)
	}
	if got := h.show("app.socket", "ActiveState")["ActiveState"]; got != "inactive" {
		t.Errorf("after install app.socket is %s, want inactive: an RPM starts nothing on install", got)
	}
	if out, _ := h.run("getent", "group", "app-operators"); out == "" {
		t.Error("no app-operators group after install")
	}
	h.systemctl("start", "app.socket")
	if got := h.show("app.socket", "ActiveState", "SubState"); got["ActiveState"] != "active" || got["SubState"] != "listening" {
		t.Fatalf("after systemctl start app.socket is %v", got)
	}
	if v := h.versions(1); v["1.0.0/1"] != 1 {
		t.Fatalf("first request after install answered by %v", v)
	}
	if out, code := h.appctl("scale", "2"); code != 0 {
		t.Fatalf("appctl scale 2: exit %d\n%s", code, out)
	}
	// is-enabled reads the symlinks; systemd's UnitFileState of a loaded
	// unit may predate them.
	if got, _ := h.run("systemctl", "is-enabled", "app.socket", "app.target"); got != "enabled\nenabled\n" {
		t.Errorf("after appctl scale 2 app.socket and app.target are %q, want enabled (for boot)", got)
	}
	// An operator's setting in the conffile (%config(noreplace)) must
	// outlive the upgrade.
	h.s.MustRun(t, "sh", "-c", "echo MEMORY_LIMIT=256M >>/etc/default/app")

	inode := h.socketInode()
	var took time.Duration
	fresh, kept := h.runLoad(func() {
		out, code, took = h.rpmTransaction("-U", v2)
		t.Logf("upgrade 1.0.0 → 1.1.0 under load took %s:\n%s", took.Round(time.Millisecond), lastLines(out, 8))
		if code != 0 {
			t.Errorf("upgrade: exit %d", code)
		}
	})
	checkLoad(t, "rpm -U 1.0.0 → 1.1.0, fresh connections", fresh, 0)
	checkLoad(t, "rpm -U 1.0.0 → 1.1.0, keep-alive", kept, 0)
	for version := range h.versions(40) {
		if !strings.HasPrefix(version, "1.1.0/") {
			t.Errorf("after the upgrade an instance answers %s", version)
		}
	}
	if got := h.running(); !slices.Equal(got, upTo(2)) || !slices.Equal(h.enabled(), upTo(2)) {
		t.Errorf("after the upgrade running %v, enabled %v; want 1..2", got, h.enabled())
	}
	if now := h.socketInode(); now != inode {
		t.Errorf("the listening socket changed during the upgrade: inode %s → %s", inode, now)
	}
	if conf, err := h.s.ReadFile("/etc/default/app"); err != nil || !strings.Contains(string(conf), "MEMORY_LIMIT=256M") {
		t.Errorf("the upgrade lost the operator's edit of /etc/default/app: %v\n%s", err, conf)
	}
	h.checkRPMFiles("app-1.1.0-1.x86_64", "/etc/default/app")

	// The broken release: its %post fails, and the old instances keep
	// serving. app@2 crash-loops meanwhile (it crashed, and restarts into
	// the broken binary): nothing may wait for it.
	h.crashLoop(2)
	fresh, kept = h.runLoad(func() {
		out, code, _ = h.rpmTransaction("-U", broken)
		t.Logf("upgrade to the broken 1.2.0:\n%s", lastLines(out, 8))
	})
	// rpm before 6.0 reports a failed %post as a warning and exits 0 (it
	// leaves the new version installed and the old one erased either
	// way); rpm 6.0 exits non-zero.
	if !strings.Contains(out, "did not become ready") || !strings.Contains(out, "%post(app-1.2.0-1.x86_64) scriptlet failed, exit status 1") {
		t.Errorf("broken upgrade: want the scriptlet's failure, saying the new version did not become ready; got:\n%s", out)
	}
	if major := h.rpmMajor(); major >= 6 && code == 0 {
		t.Errorf("broken upgrade: rpm %d exited 0, want non-zero", major)
	} else {
		t.Logf("broken upgrade: rpm %d exited %d", major, code)
	}
	h.s.MustRun(t, "rm", crashLoopDropIn(2))
	h.systemctl("daemon-reload")
	checkLoad(t, "rpm -U 1.1.0 → broken 1.2.0, fresh connections", fresh, 0)
	checkLoad(t, "rpm -U 1.1.0 → broken 1.2.0, keep-alive", kept, 0)
	for version := range h.versions(40) {
		if !strings.HasPrefix(version, "1.1.0/") {
			t.Errorf("after the broken upgrade an instance answers %s", version)
		}
	}
	if now := h.socketInode(); now != inode {
		t.Errorf("the listening socket changed during the broken upgrade: inode %s → %s", inode, now)
	}

	// Back to the good release, as an operator would: --oldpackage allows
	// the lower version.
	out, code, took = h.rpmTransaction("-U", v2, "--oldpackage")
	if code != 0 {
		t.Fatalf("going back to 1.1.0: exit %d\n%s", code, out)
	}
	if took > 30*time.Second {
		t.Errorf("going back to 1.1.0 at idle took %s: an instance hung while draining\n%s", took, out)
	}
	h.waitFor("app@2 back from its crash loop", 30*time.Second, func() bool {
		return h.show("app@2.service", "SubState")["SubState"] == "running"
	})
	for version := range h.versions(40) {
		if !strings.HasPrefix(version, "1.1.0/") {
			t.Errorf("after going back to 1.1.0 an instance answers %s", version)
		}
	}

	h.rpmErase(created)
}

// rpmErase erases the package and checks that nothing of it is left: no
// file it listed, none of the directories it created (dirs), no
// enablement or drop-in of its units, no operator group, no unit of it
// loaded, nothing else on disk.
func (h *herd) rpmErase(dirs []string) {
	t := h.t
	files := h.rpmFiles("app")
	// The metrics timer, where the package ships it, enabled as an
	// operator may, with node_exporter's textfile directory in place: the
	// erase must stop and disable it, and take the metrics file along.
	if slices.Contains(files, "/usr/lib/systemd/system/app-metrics.timer") {
		h.s.MustRun(t, "mkdir", "-p", "/var/lib/prometheus/node-exporter")
		h.systemctl("enable", "--now", "app-metrics.timer")
		took := h.waitFor("app-metrics.service writing app.prom", 30*time.Second, func() bool {
			_, err := h.s.ReadFile("/var/lib/prometheus/node-exporter/app.prom")
			return err == nil
		})
		t.Logf("app-metrics.timer enabled; app.prom written in %s", took.Round(time.Millisecond))
	}
	start := time.Now()
	out, code := h.rpm("-e", "--nodeps", "--force-debian", "app")
	t.Logf("rpm -e app: exit %d in %s", code, time.Since(start).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("erase: exit %d\n%s", code, out)
	}
	if out, code := h.rpm("-q", "app"); code == 0 {
		t.Errorf("rpm still knows app after erase: %s", out)
	}
	for _, f := range h.existing(files, true) {
		t.Errorf("left after erase: %s (listed by rpm -ql)", f)
	}
	for _, d := range h.existing(dirs, true) {
		t.Errorf("left after erase: %s (created by the installation)", d)
	}
	if out, _ := h.run("getent", "group", "app-operators"); out != "" {
		t.Errorf("group left after erase: %s", out)
	}
	for _, line := range strings.Split(h.s.MustRun(t, "find", "/etc/systemd/system"), "\n") {
		if ofApp.MatchString(line) {
			t.Errorf("left under /etc/systemd/system after erase: %s", line)
		}
	}
	// systemd forgets units that are inactive and whose files are gone;
	// anything still listed is active, failed or still referenced.
	units := h.systemctl("list-units", "--all", "--plain", "--no-legend")
	for _, line := range strings.Split(units, "\n") {
		if f := strings.Fields(line); len(f) > 0 && ofApp.MatchString(f[0]) {
			t.Errorf("unit still loaded after erase: %s", line)
		}
	}
	// What rpm keeps on purpose: a conffile the operator edited, saved
	// under a new name.
	if conf, err := h.s.ReadFile(rpmSave); err != nil || !strings.Contains(string(conf), "MEMORY_LIMIT=256M") {
		t.Errorf("erase did not keep the edited conffile as %s: %v\n%s", rpmSave, err, conf)
	}
	changed, err := h.s.Changed()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range changed {
		if ofApp.MatchString(f) && f != rpmSave && !strings.HasPrefix(f, rpmDB+"/") && !strings.HasPrefix(f, "/var/log/") {
			t.Errorf("left on disk after erase: %s", f)
		}
	}
}

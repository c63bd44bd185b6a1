package tests

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A member of app-operators may scale through the polkit rule; a user
// outside the group is refused with a clear message and changes nothing;
// the operator cannot stop a unit that is not the service's.
func TestAppctlPolkit(t *testing.T) {
	h := newHerd(t)
	if _, err := os.Stat("/usr/lib/polkit-1/polkitd"); err != nil {
		t.Fatal("polkitd is not installed (apt-get install polkitd); .ci/run installs it")
	}
	h.must(h.s.CopyFile(filepath.Join("..", "packaging", "polkit", "50-app-operators.rules"),
		"/etc/polkit-1/rules.d/50-app-operators.rules", 0o644))
	h.s.MustRun(t, "groupadd", "--system", "app-operators")
	h.s.MustRun(t, "useradd", "--no-create-home", "--groups", "app-operators", "op")
	h.s.MustRun(t, "useradd", "--no-create-home", "guest")
	h.s.MustRun(t, "systemd-run", "--unit=unrelated", "/usr/bin/sleep", "infinity")
	as := func(user string, args ...string) (string, int) {
		return h.run(append([]string{"setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--"}, args...)...)
	}

	out, code := as("op", "appctl", "scale", "2")
	if code != 0 {
		t.Fatalf("operator: appctl scale 2: exit %d\n%s", code, out)
	}
	if got := h.running(); len(got) != 2 || len(h.enabled()) != 2 {
		t.Fatalf("operator scaled to %v, enabled %v", got, h.enabled())
	}
	out, code = as("guest", "appctl", "scale", "3")
	t.Logf("outsider: appctl scale 3:\n%s", out)
	if code != 1 || !strings.Contains(out, "permission denied") || !strings.Contains(out, "operator group") || strings.Count(out, "\n") > 2 {
		t.Errorf("outsider: appctl scale 3: exit %d, want 1 with a permission message:\n%s", code, out)
	}
	if got := h.running(); len(got) != 2 {
		t.Errorf("outsider changed the herd: running %v", got)
	}
	out, code = as("op", "systemctl", "stop", "unrelated.service")
	if code == 0 || h.show("unrelated.service", "ActiveState")["ActiveState"] != "active" {
		t.Errorf("operator stopped an unrelated unit: exit %d\n%s", code, out)
	}
	out, code = as("op", "appctl", "status")
	if code != 0 || !strings.Contains(out, "app@2") {
		t.Errorf("operator: appctl status: exit %d\n%s", code, out)
	}
	// Autoscaling goes through a unit of the service, so the rule covers it.
	if out, code := as("op", "appctl", "autoscale", "2-2"); code != 0 || h.show(autoscaler("2-2:cpu70:window1m0s"), "ActiveState")["ActiveState"] != "active" {
		t.Errorf("operator: appctl autoscale 2-2: exit %d\n%s", code, out)
	}
	if out, code := as("guest", "appctl", "autoscale", "off"); code != 1 || !strings.Contains(out, "permission denied") {
		t.Errorf("outsider: appctl autoscale off: exit %d, want 1 with a permission message:\n%s", code, out)
	}
	if out, code := as("op", "appctl", "autoscale", "off"); code != 0 || h.autoscalers() != "" {
		t.Errorf("operator: appctl autoscale off: exit %d\n%s\nstill running: %s", code, out, h.autoscalers())
	}
}

// appctl logs interleaves the records of several instances, narrows to one
// with -i, and prints the documented JSON.
func TestAppctlLogs(t *testing.T) {
	h := newHerd(t)
	if out, code := h.appctl("scale", "2"); code != 0 {
		t.Fatal(out)
	}
	out, code := h.appctl("logs", "-n", "200")
	if code != 0 || !strings.Contains(out, "app@1") || !strings.Contains(out, "app@2") || !strings.Contains(out, "ready") {
		t.Fatalf("appctl logs: exit %d\n%s", code, out)
	}
	out, _ = h.appctl("logs", "-n", "200", "-i", "2")
	if strings.Contains(out, "app@1 ") || !strings.Contains(out, "app@2") {
		t.Errorf("appctl logs -i 2 shows other instances:\n%s", out)
	}
	out, code = h.appctl("logs", "-n", "200", "-o", "json")
	if code != 0 {
		t.Fatal(out)
	}
	units := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec struct {
			Unit, Instance, Message string
			Fields                  map[string]string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		units[rec.Unit] = true
		if rec.Message == "ready" && rec.Fields["INSTANCE"] != rec.Instance {
			t.Errorf("record of %s carries INSTANCE=%q", rec.Unit, rec.Fields["INSTANCE"])
		}
	}
	if !units["app@1.service"] || !units["app@2.service"] {
		t.Errorf("JSON records came from %v", units)
	}
	// -n counts the service's records, not the journal's: other units'
	// records after the service's last ones do not shorten it.
	for range 3 {
		h.s.MustRun(t, "systemd-run", "--quiet", "--wait", "true")
	}
	out, _ = h.appctl("logs", "-n", "200")
	all := lines(out)
	out, _ = h.appctl("logs", "-n", "3")
	last := lines(out)
	if len(all) < 3 || !slices.Equal(last, all[len(all)-3:]) {
		t.Errorf("appctl logs -n 3 gave %d records:\n%s\nwant the last 3 of:\n%s", len(last), strings.Join(last, "\n"), strings.Join(all, "\n"))
	}
	// Following shows the last records first, then picks up an instance
	// started after it began, and shows no record twice.
	follow := h.s.Command(t.Context(), "appctl", "logs", "-f", "-n", "2")
	var buf lockedWriter
	follow.Stdout = &buf
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	h.waitFor("logs -f shows the last 2 records", 10*time.Second, func() bool { return len(lines(buf.String())) >= 2 })
	h.appctl("scale", "3")
	h.waitFor("logs -f shows app@3", 10*time.Second, func() bool { return strings.Contains(buf.String(), "app@3") })
	_ = follow.Process.Kill()
	_ = follow.Wait()
	seen := map[string]bool{}
	for _, l := range lines(buf.String()) {
		if seen[l] {
			t.Errorf("appctl logs -f showed %q twice:\n%s", l, buf.String())
		}
		seen[l] = true
	}
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Without systemd, appctl says so and exits 1.
func TestAppctlWithoutSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to hide /run in a private mount namespace")
	}
	cmd := exec.Command("unshare", "--mount", "sh", "-c", `mount -t tmpfs none /run && exec "$0" status`, filepath.Join(binDir, "appctl"))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "systemd is unreachable") {
		t.Fatalf("appctl status without systemd: %v\n%s", err, out)
	}
}

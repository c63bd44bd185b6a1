package tests

import (
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/unitkit/unitkit/internal/metrics"
)

// metricsBase is the METRICS_PORT_BASE the scenarios set: instance N
// serves its own /metrics on 18000+N.
const metricsBase = 18000

// withMetricsPorts is the drop-in that turns on the per-instance metrics
// listeners.
var withMetricsPorts = dropIn{"app@.service", "metrics",
	"[Service]\nEnvironment=METRICS_PORT_BASE=" + strconv.Itoa(metricsBase) + " METRICS_HOST=127.0.0.1\n"}

// appctl metrics reports systemd's view of the herd: three instances up
// and enabled, a crash counted in restarts_total, a scale-down in the
// desired count; --textfile writes the same as a file that parses; every
// instance serves its own metrics on METRICS_PORT_BASE+N.
func TestAppctlMetrics(t *testing.T) {
	h := newHerd(t, withMetricsPorts)
	if out, code := h.appctl("scale", "3"); code != 0 {
		t.Fatalf("appctl scale 3: exit %d\n%s", code, out)
	}
	start := time.Now()
	m := h.metrics()
	t.Logf("appctl metrics at 3 instances took %s", time.Since(start).Round(time.Millisecond))
	h.checkMetrics(m, map[string]float64{
		`unitkit_socket_listening{unit="app.socket"}`:                 1,
		`unitkit_instances_desired{unit="app.target"}`:                3,
		`unitkit_socket_backlog{unit="app.socket"}`:                   4096,
		`unitkit_instance_up{unit="app@1.service"}`:                   1,
		`unitkit_instance_up{unit="app@3.service"}`:                   1,
		`unitkit_instance_enabled{unit="app@2.service"}`:              1,
		`unitkit_instance_restarts_total{unit="app@2.service"}`:       0,
		`unitkit_instance_watchdog_kills_total{unit="app@2.service"}`: 0,
	})
	h.checkInstanceMetrics(3)

	// A crash: systemd restarts the instance and counts it. First the
	// scale's record must be done: a daemon-reload it may still make
	// while app@2 waits to restart would count that restart twice.
	h.waitFor("app-persist@3 done", 30*time.Second, func() bool {
		return h.show("app-persist@3.service", "ActiveState")["ActiveState"] == "inactive"
	})
	h.systemctl("kill", "--signal=SIGKILL", "app@2.service")
	h.waitFor("app@2 restarted", 10*time.Second, func() bool {
		p := h.show("app@2.service", "NRestarts", "SubState")
		return p["NRestarts"] == "1" && p["SubState"] == "running"
	})
	h.checkMetrics(h.metrics(), map[string]float64{
		`unitkit_instance_restarts_total{unit="app@2.service"}`: 1,
		`unitkit_instance_restarts_total{unit="app@1.service"}`: 0,
		`unitkit_instance_up{unit="app@2.service"}`:             1,
	})

	h.checkTextfile()

	if out, code := h.appctl("scale", "2"); code != 0 {
		t.Fatalf("appctl scale 2: exit %d\n%s", code, out)
	}
	m = h.metrics()
	h.checkMetrics(m, map[string]float64{`unitkit_instances_desired{unit="app.target"}`: 2})
	// A stopped instance that is not enabled is reported as down until
	// systemd unloads it; then it is not reported at all.
	if m[`unitkit_instance_up{unit="app@3.service"}`] != 0 || m[`unitkit_instance_enabled{unit="app@3.service"}`] != 0 {
		t.Errorf("app@3 after scale 2 is reported up or enabled: %v", m)
	}
}

// appctl metrics run by a user who cannot read the system journal fails
// instead of reporting zero watchdog kills.
func TestAppctlMetricsWithoutJournalAccess(t *testing.T) {
	h := newHerd(t)
	out, code := h.run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "appctl", "metrics")
	t.Logf("appctl metrics as nobody: exit %d: %s", code, out)
	if code != 1 || !strings.Contains(out, "systemd-journal") {
		t.Errorf("appctl metrics as nobody: exit %d, want 1 and a hint about the systemd-journal group\n%s", code, out)
	}
}

// textfileDir is where Debian's node_exporter reads textfiles.
const textfileDir = "/var/lib/prometheus/node-exporter"

// app-metrics.timer from contrib/prometheus runs appctl metrics, under the
// service's sandboxing, at once and every 15 s after: app.prom appears
// with systemd's figures.
func TestMetricsTimer(t *testing.T) {
	h := newHerd(t)
	h.systemctl("start", "app@1.service", "app@2.service")
	h.s.MustRun(t, "mkdir", "-p", textfileDir)
	var units []string
	for _, f := range []string{"app-metrics.service", "app-metrics.timer"} {
		h.must(h.s.CopyFile(filepath.Join("..", "contrib", "prometheus", f), "/etc/systemd/system/"+f, 0o644))
		units = append(units, "/etc/systemd/system/"+f)
	}
	if out, code := h.run(append([]string{"systemd-analyze", "verify"}, units...)...); code != 0 || out != "" {
		t.Errorf("systemd-analyze verify: exit %d\n%s", code, out)
	}
	h.systemctl("daemon-reload")
	h.systemctl("enable", "--now", "app-metrics.timer")
	h.waitFor("app-metrics.service ran", 10*time.Second, func() bool {
		p := h.show("app-metrics.service", "ExecMainExitTimestampMonotonic", "ActiveState")
		return p["ExecMainExitTimestampMonotonic"] != "0" && p["ActiveState"] != "activating"
	})
	if p := h.show("app-metrics.service", "Result", "ExecMainStatus"); p["Result"] != "success" || p["ExecMainStatus"] != "0" {
		t.Fatalf("app-metrics.service: %v\n%s", p, h.s.Journal("-u", "app-metrics.service"))
	}
	data, err := h.s.ReadFile(textfileDir + "/app.prom")
	if err != nil {
		t.Fatal(err)
	}
	h.checkMetrics(h.parseExposition(string(data)), map[string]float64{
		`unitkit_socket_listening{unit="app.socket"}`: 1,
		`unitkit_instance_up{unit="app@2.service"}`:   1,
	})
	if out := h.s.MustRun(t, "stat", "-c", "%a %U", textfileDir+"/app.prom"); out != "644 root\n" {
		t.Errorf("app.prom: mode and owner %q, want 644 root", out)
	}
	p := h.show("app-metrics.timer", "LastTriggerUSecMonotonic", "NextElapseUSecMonotonic")
	last, next := usec(p["LastTriggerUSecMonotonic"]), usec(p["NextElapseUSecMonotonic"])
	if d := next - last; d < 14*time.Second || d > 17*time.Second {
		t.Errorf("app-metrics.timer runs again %s after its last run, want 15s: %v", d, p)
	}
}

// usec parses a monotonic timestamp as systemctl show prints it: a number
// of microseconds, or a time span such as "2h 38min 31.830543s"; -1 if it
// is neither.
func usec(v string) time.Duration {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(n) * time.Microsecond
	}
	var total time.Duration
	for _, f := range strings.Fields(v) {
		d, err := time.ParseDuration(strings.Replace(f, "min", "m", 1))
		if err != nil {
			return -1
		}
		total += d
	}
	return total
}

// metrics runs appctl metrics and returns its samples by series, e.g.
// `unitkit_instance_up{unit="app@1.service"}`.
func (h *herd) metrics() map[string]float64 {
	h.t.Helper()
	out, code := h.appctl("metrics")
	if code != 0 {
		h.t.Fatalf("appctl metrics: exit %d\n%s", code, out)
	}
	return h.parseExposition(out)
}

// parseExposition parses a text exposition strictly, checks that its
// families are exactly the ones appctl metrics documents, and returns its
// samples by series.
func (h *herd) parseExposition(text string) map[string]float64 {
	h.t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		h.t.Fatalf("exposition does not parse: %v\n%s", err, text)
	}
	if got, want := slices.Sorted(maps.Keys(fams)), slices.Sorted(slices.Values(metrics.Names())); !slices.Equal(got, want) {
		h.t.Errorf("metric families %v, want %v", got, want)
	}
	samples := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			for _, l := range m.GetLabel() {
				samples[name+"{"+l.GetName()+"="+strconv.Quote(l.GetValue())+"}"] = v
			}
		}
	}
	return samples
}

// checkMetrics fails the test unless every series in want has its value.
func (h *herd) checkMetrics(got, want map[string]float64) {
	h.t.Helper()
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			h.t.Errorf("%s = %v (present: %v), want %v", series, g, ok, v)
		}
	}
}

// checkInstanceMetrics fetches /metrics from port METRICS_PORT_BASE+N of
// each of instances 1 … n, inside the sandbox, and checks that instance N
// answered.
func (h *herd) checkInstanceMetrics(n int) {
	h.t.Helper()
	c := h.s.HTTPClient(false)
	for i := 1; i <= n; i++ {
		url := "http://127.0.0.1:" + strconv.Itoa(metricsBase+i) + "/metrics"
		resp, err := c.Get(url)
		if err != nil {
			h.t.Fatalf("GET %s: %v", url, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Instance") != strconv.Itoa(i) {
			h.t.Fatalf("GET %s: %s X-Instance=%q %v", url, resp.Status, resp.Header.Get("X-Instance"), err)
		}
		if !strings.Contains(string(body), "app_requests_total") {
			h.t.Errorf("GET %s lacks app_requests_total:\n%s", url, body)
		}
	}
}

// checkTextfile runs appctl metrics --textfile into node_exporter's
// directory and parses the file; a missing directory fails with exit 1
// and a name that does not end in .prom with exit 2.
func (h *herd) checkTextfile() {
	h.t.Helper()
	const dir = textfileDir
	h.s.MustRun(h.t, "mkdir", "-p", dir)
	if out, code := h.appctl("metrics", "--textfile", dir+"/app.prom"); code != 0 || out != "" {
		h.t.Fatalf("appctl metrics --textfile: exit %d, output %q", code, out)
	}
	data, err := h.s.ReadFile(dir + "/app.prom")
	if err != nil {
		h.t.Fatal(err)
	}
	h.checkMetrics(h.parseExposition(string(data)), map[string]float64{`unitkit_instances_desired{unit="app.target"}`: 3})
	if out := h.s.MustRun(h.t, "ls", "-A", dir); out != "app.prom\n" {
		h.t.Errorf("%s holds %q, want app.prom alone", dir, out)
	}
	if out, code := h.appctl("metrics", "--textfile", "/nonexistent/app.prom"); code != 1 || !strings.Contains(out, "/nonexistent/app.prom") {
		h.t.Errorf("--textfile into a missing directory: exit %d\n%s", code, out)
	}
	if out, code := h.appctl("metrics", "--textfile", dir+"/app.txt"); code != 2 {
		h.t.Errorf("--textfile app.txt: exit %d, want 2\n%s", code, out)
	}
}

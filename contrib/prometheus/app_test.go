package prometheus

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/unitkit/unitkit/internal/herd"
	"github.com/unitkit/unitkit/internal/metrics"
)

// series maps each metric name of an exposition to the names of the
// labels its samples carry.
type series map[string][]string

// parseExposition parses a text exposition strictly into series.
func parseExposition(t *testing.T, data []byte) series {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, data)
	}
	out := series{}
	for name, f := range fams {
		var lbls []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(lbls, l.GetName()) {
					lbls = append(lbls, l.GetName())
				}
			}
		}
		out[name] = lbls
		// Histograms and summaries are stored as several series.
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[name+"_bucket"] = append(slices.Clone(lbls), "le")
			out[name+"_sum"], out[name+"_count"] = lbls, lbls
		case dto.MetricType_SUMMARY:
			out[name] = append(slices.Clone(lbls), "quantile")
			out[name+"_sum"], out[name+"_count"] = lbls, lbls
		}
	}
	return out
}

// herdSeries returns what appctl metrics emits, from the collector it
// uses, for a herd with one instance.
func herdSeries(t *testing.T) series {
	t.Helper()
	reg, err := metrics.NewRegistry(metrics.State{Snapshot: herd.Snapshot{
		App:       "app",
		Socket:    herd.Socket{Unit: "app.socket", State: "active"},
		Instances: []herd.Instance{{Unit: "app@1.service", Name: "1", Number: 1, State: "active", Enabled: true}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := metrics.Write(&buf, reg); err != nil {
		t.Fatal(err)
	}
	s := parseExposition(t, buf.Bytes())
	if len(s) != len(metrics.Names()) {
		t.Fatalf("the collector emits %d metrics, metrics.Names lists %d", len(s), len(metrics.Names()))
	}
	return s
}

// appSeries builds the real app from the root module, runs it outside
// systemd as instance 1 with METRICS_PORT_BASE set, sends it one request,
// and returns what its own metrics port serves; it checks that /metrics on
// the shared port serves the same metrics.
func appSeries(t *testing.T) series {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "app")
	build := exec.Command("go", "build", "-C", filepath.Join("..", ".."), "-o", bin, "./cmd/app")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the app: %v\n%s", err, out)
	}
	port, metricsPort := freePort(t), freePort(t)
	runApp(t, bin, "PORT="+strconv.Itoa(port), "INSTANCE=1", "METRICS_HOST=127.0.0.1",
		"METRICS_PORT_BASE="+strconv.Itoa(metricsPort-1))
	shared := "http://127.0.0.1:" + strconv.Itoa(port)
	waitReady(t, shared+"/readyz")
	fetch(t, shared+"/")
	own := parseExposition(t, fetch(t, "http://127.0.0.1:"+strconv.Itoa(metricsPort)+"/metrics"))
	viaSocket := parseExposition(t, fetch(t, shared+"/metrics"))
	for name := range own {
		if _, ok := viaSocket[name]; !ok {
			t.Errorf("%s is served on the metrics port but not on the shared one", name)
		}
	}
	return own
}

// runApp starts the app binary with env added to a clean environment (no
// systemd variables) and stops it with SIGTERM at the end of the test.
func runApp(t *testing.T, bin string, env ...string) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LOG_LEVEL=warn"}, env...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("app: %v\n%s", err, stderr.String())
		}
	})
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// client closes each connection after its request.
func client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// waitReady polls url for up to ten seconds until it answers 200.
func waitReady(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if resp, err := client().Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200", url)
}

// fetch returns the body of url, failing the test unless it answers 200.
func fetch(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := client().Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return body
}

// The app's metrics port serves the app's, the Go runtime's and the
// process's metrics.
func TestAppMetricsPort(t *testing.T) {
	s := appSeries(t)
	for _, want := range []string{"app_requests_total", "app_http_requests_total", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := s[want]; !ok {
			t.Errorf("the metrics port lacks %s", want)
		}
	}
	if !slices.Contains(s["app_http_requests_total"], "code") {
		t.Errorf("app_http_requests_total has labels %v, want code among them", s["app_http_requests_total"])
	}
}

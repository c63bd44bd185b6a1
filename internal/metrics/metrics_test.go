package metrics

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/unitkit/unitkit/internal/backoff"
	"github.com/unitkit/unitkit/internal/herd"
)

// state is a herd of three instances: 1 running and enabled, 2 crash
// looping (backing off) and enabled, 3 stopped and no longer enabled.
func state() State {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return State{
		Snapshot: herd.Snapshot{
			App: "app", Time: at,
			Socket: herd.Socket{Unit: "app.socket", State: "active", SubState: "running",
				Listen: []string{"[::]:8080"}, Queued: 3, Backlog: 4096},
			Instances: []herd.Instance{
				{Unit: "app@1.service", Name: "1", Number: 1, State: "active", SubState: "running", Enabled: true, Restarts: 1, MemoryRestarts: 1},
				{Unit: "app@2.service", Name: "2", Number: 2, State: "deactivating", SubState: "stop-post", Enabled: true, Restarts: 7,
					Backoff: &backoff.State{Unit: "app@2.service", Failures: 8, Delay: 6400 * time.Millisecond, Next: at.Add(6400 * time.Millisecond)}},
				{Unit: "app@3.service", Name: "3", Number: 3, State: "inactive", SubState: "dead"},
			},
		},
		WatchdogKills: map[string]int{"app@1.service": 1, "app@9.service": 4},
	}
}

// golden is what state() gives, in the text exposition format.
const golden = `# HELP unitkit_instance_backoff_seconds Seconds until the next attempt of an instance that waits because it keeps failing, else 0.
# TYPE unitkit_instance_backoff_seconds gauge
unitkit_instance_backoff_seconds{unit="app@1.service"} 0
unitkit_instance_backoff_seconds{unit="app@2.service"} 6.4
unitkit_instance_backoff_seconds{unit="app@3.service"} 0
# HELP unitkit_instance_enabled 1 when the instance is enabled (starts at boot), else 0.
# TYPE unitkit_instance_enabled gauge
unitkit_instance_enabled{unit="app@1.service"} 1
unitkit_instance_enabled{unit="app@2.service"} 1
unitkit_instance_enabled{unit="app@3.service"} 0
# HELP unitkit_instance_failures_in_a_row Failures in a row of an instance that waits because it keeps failing, else 0.
# TYPE unitkit_instance_failures_in_a_row gauge
unitkit_instance_failures_in_a_row{unit="app@1.service"} 0
unitkit_instance_failures_in_a_row{unit="app@2.service"} 8
unitkit_instance_failures_in_a_row{unit="app@3.service"} 0
# HELP unitkit_instance_memory_restarts_total Times the instance stopped, drained, because its memory stayed above its limit (MEMORY_LIMIT) since boot.
# TYPE unitkit_instance_memory_restarts_total counter
unitkit_instance_memory_restarts_total{unit="app@1.service"} 1
unitkit_instance_memory_restarts_total{unit="app@2.service"} 0
unitkit_instance_memory_restarts_total{unit="app@3.service"} 0
# HELP unitkit_instance_restarts_total Automatic restarts of the instance (systemd's NRestarts) since systemd loaded the unit.
# TYPE unitkit_instance_restarts_total counter
unitkit_instance_restarts_total{unit="app@1.service"} 1
unitkit_instance_restarts_total{unit="app@2.service"} 7
unitkit_instance_restarts_total{unit="app@3.service"} 0
# HELP unitkit_instance_up 1 when systemd reports the instance active (running or reloading), else 0.
# TYPE unitkit_instance_up gauge
unitkit_instance_up{unit="app@1.service"} 1
unitkit_instance_up{unit="app@2.service"} 0
unitkit_instance_up{unit="app@3.service"} 0
# HELP unitkit_instance_watchdog_kills_total Times systemd failed the instance with result 'watchdog' since boot, from the journal.
# TYPE unitkit_instance_watchdog_kills_total counter
unitkit_instance_watchdog_kills_total{unit="app@1.service"} 1
unitkit_instance_watchdog_kills_total{unit="app@2.service"} 0
unitkit_instance_watchdog_kills_total{unit="app@3.service"} 0
# HELP unitkit_instances_desired Instances enabled into the target, i.e. started at boot: the count appctl scale recorded.
# TYPE unitkit_instances_desired gauge
unitkit_instances_desired{unit="app.target"} 2
# HELP unitkit_socket_backlog The limit of the socket's accept queue (Backlog=).
# TYPE unitkit_socket_backlog gauge
unitkit_socket_backlog{unit="app.socket"} 4096
# HELP unitkit_socket_listening 1 when systemd reports the socket unit active (listening), else 0.
# TYPE unitkit_socket_listening gauge
unitkit_socket_listening{unit="app.socket"} 1
# HELP unitkit_socket_queued_connections Connections waiting in the socket's accept queue.
# TYPE unitkit_socket_queued_connections gauge
unitkit_socket_queued_connections{unit="app.socket"} 3
`

// The exposition of a known state is exactly the golden text: every name
// in Names, the label unit on each, and the instance figures systemd gave.
func TestWrite(t *testing.T) {
	reg, err := NewRegistry(state())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, reg); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != golden {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, golden)
	}
	families := parse(t, buf.Bytes())
	for _, name := range Names() {
		if _, ok := families[name]; !ok {
			t.Errorf("%s missing from the exposition", name)
		}
	}
	if len(families) != len(Names()) {
		t.Errorf("%d families, Names lists %d", len(families), len(Names()))
	}
}

// A socket that is not active reports 0, and a herd without instances
// still reports the socket and a desired count of 0.
func TestSocketDownNoInstances(t *testing.T) {
	s := State{Snapshot: herd.Snapshot{App: "shop", Socket: herd.Socket{Unit: "shop.socket", State: "failed", SubState: "failed"}}}
	reg, err := NewRegistry(s)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, reg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`unitkit_socket_listening{unit="shop.socket"} 0`,
		`unitkit_instances_desired{unit="shop.target"} 0`,
	} {
		if !strings.Contains(buf.String(), want+"\n") {
			t.Errorf("exposition lacks %s:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "unitkit_instance_up{") {
		t.Errorf("instance metrics without instances:\n%s", buf.String())
	}
}

// An invalid service name is refused, not turned into odd labels.
func TestNewRegistryBadApp(t *testing.T) {
	if _, err := NewRegistry(State{Snapshot: herd.Snapshot{App: "a b"}}); err == nil {
		t.Error("NewRegistry accepted the service name \"a b\"")
	}
}

// WriteTextfile leaves exactly one file, readable by everyone, that
// parses; a missing directory is an error that names the path and leaves
// nothing behind.
func TestWriteTextfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.prom")
	reg, err := NewRegistry(state())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second write replaces the first
		if err := WriteTextfile(path, reg); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "app.prom" {
		t.Errorf("directory holds %v, want app.prom alone", entries)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("app.prom: %v, %v; want mode 0644", fi.Mode(), err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != golden {
		t.Errorf("app.prom:\n%s\nwant:\n%s", data, golden)
	}
	missing := filepath.Join(dir, "nope", "app.prom")
	if err := WriteTextfile(missing, reg); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("write into a missing directory: %v", err)
	}
}

// parse decodes a text exposition strictly and returns its families by
// name.
func parse(t *testing.T, data []byte) map[string]bool {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, data)
	}
	names := map[string]bool{}
	for name, f := range fams {
		names[name] = true
		for _, m := range f.GetMetric() {
			labels := []string{}
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
			if !slices.Equal(labels, []string{"unit"}) {
				t.Errorf("%s has labels %v, want unit alone", name, labels)
			}
		}
	}
	return names
}

package prometheus

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
)

// horizon is how long each scenario's series run: 61 samples, one every
// 15 s, from 0 to 15m.
const horizon = 15 * time.Minute

// node and app are the target labels of the two jobs of prometheus.yml
// on host h, for unit u.
func node(u string) string {
	return fmt.Sprintf(`job="node",instance="h:9100",host="h",unit=%q`, u)
}

func app(n int) string {
	return fmt.Sprintf(`job="app",instance="h:%d",host="h",unit="app@%d.service"`, 18000+n, n)
}

// instance returns the series of one instance over the horizon as both
// jobs see them: systemd's view (up, enabled, restarts, watchdog kills,
// each a promqltest series description such as "1x60" or "0x30 1x30") and
// the scrape of its metrics port (target up, requests with status 200 and
// 500 per step).
func instance(n int, up, enabled, restarts, kills, scraped string, ok, failed int) string {
	u := fmt.Sprintf("app@%d.service", n)
	lines := []string{
		fmt.Sprintf("unitkit_instance_up{%s} %s", node(u), up),
		fmt.Sprintf("unitkit_instance_enabled{%s} %s", node(u), enabled),
		fmt.Sprintf("unitkit_instance_restarts_total{%s} %s", node(u), restarts),
		fmt.Sprintf("unitkit_instance_watchdog_kills_total{%s} %s", node(u), kills),
		fmt.Sprintf("up{%s} %s", app(n), scraped),
		fmt.Sprintf(`app_http_requests_total{%s,path="/",code="200"} 0+%dx60`, app(n), ok),
	}
	if failed > 0 {
		lines = append(lines, fmt.Sprintf(`app_http_requests_total{%s,path="/",code="500"} 0+%dx60`, app(n), failed))
	}
	return strings.Join(lines, "\n")
}

// healthy is an instance running and enabled all along, answering 100
// requests per step without an error.
func healthy(n int) string { return instance(n, "1x60", "1x60", "0x60", "0x60", "1x60", 100, 0) }

// herdOver returns the series of a herd: the socket's listening series, the
// textfile's modification times, and the instances.
func herdOver(listening, mtime string, instances ...string) string {
	return strings.Join(append([]string{
		fmt.Sprintf("unitkit_socket_listening{%s} %s", node("app.socket"), listening),
		fmt.Sprintf(`unitkit_instances_desired{%s} 2x60`, node("app.target")),
		fmt.Sprintf(`node_textfile_mtime_seconds{job="node",instance="h:9100",host="h",file="/var/lib/prometheus/node-exporter/app.prom"} %s`, mtime),
		// Another collector's file, never rewritten: not ours to watch.
		`node_textfile_mtime_seconds{job="node",instance="h:9100",host="h",file="/var/lib/prometheus/node-exporter/apt.prom"} 0x60`,
	}, instances...), "\n")
}

// fresh is the modification time of a textfile rewritten at every step.
const fresh = "0+15x60"

// scenarios replay failures (and non-failures) of a herd of two instances
// and say which alerts must be firing at the end, as "Alert unit" (or
// "Alert file").
var scenarios = []struct {
	name   string
	series string
	want   []string
}{
	{"healthy", herdOver("1x60", fresh, healthy(1), healthy(2),
		// Scaled down: stopped and not enabled, its target still listed.
		instance(3, "0x60", "0x60", "0x60", "0x60", "0x60", 0, 0)), nil},
	{"one restart and a brief stop are no alert", herdOver("1x60", fresh, healthy(1),
		instance(2, "1x56 0x4", "1x60", "0x30 1x30", "0x60", "1x56 0x4", 100, 0)), nil},
	{"a few server errors are no alert", herdOver("1x60", fresh, healthy(1),
		instance(2, "1x60", "1x60", "0x60", "0x60", "1x60", 100, 1)), nil},
	{"socket closed", herdOver("1x30 0x30", fresh, healthy(1), healthy(2)),
		[]string{"AppSocketNotListening app.socket"}},
	{"crash loop", herdOver("1x60", fresh, healthy(1),
		instance(2, "1x30 0x30", "1x60", "0x30 0+1x30", "0x60", "1x30 0x30", 100, 0)),
		[]string{"AppInstanceDown app@2.service", "AppInstanceRestarting app@2.service"}},
	{"watchdog kill", herdOver("1x60", fresh, healthy(1),
		instance(2, "1x60", "1x60", "0x40 1x20", "0x40 1x20", "1x60", 100, 0)),
		[]string{"AppInstanceWatchdogKill app@2.service"}},
	{"textfile not rewritten", herdOver("1x60", "0+15x20 300x40", healthy(1), healthy(2)),
		[]string{"AppMetricsStale /var/lib/prometheus/node-exporter/app.prom"}},
	{"metrics port not answering", herdOver("1x60", fresh, healthy(1),
		instance(2, "1x60", "1x60", "0x60", "0x60", "1x20 0x40", 100, 0)),
		[]string{"AppInstanceTargetDown app@2.service"}},
	{"server errors", herdOver("1x60", fresh, healthy(1),
		instance(2, "1x60", "1x60", "0x60", "0x60", "1x60", 80, 20)),
		[]string{"AppHighErrorRate app@2.service"}},
}

// Each alert fires in the scenario made for it, with its annotations
// expanded, and no other alert fires there or on a healthy herd.
func TestAlertsOnSyntheticSeries(t *testing.T) {
	groups, err := LoadRules("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			rs, err := NewAlertingRules(groups)
			if err != nil {
				t.Fatal(err)
			}
			st := promqltest.LoadedStorage(t, "load 15s\n"+indent(sc.series))
			engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
			firing, err := Firing(t.Context(), rs, engine, st, time.Unix(0, 0), time.Unix(0, 0).Add(horizon), 15*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range firing {
				name := a.Labels.Get("alertname")
				what := a.Labels.Get("unit") + a.Labels.Get("file")
				got = append(got, name+" "+what)
				tested[name] = true
				for _, ann := range []string{"summary", "description"} {
					text := a.Annotations.Get(ann)
					if text == "" || strings.Contains(text, "error expanding template") || strings.Contains(text, "<no value>") {
						t.Errorf("%s %s: %s %q", name, what, ann, text)
					}
				}
				if d := a.Annotations.Get("description"); strings.Contains(what, "@2.") && strings.Contains(d, "appctl logs -i") &&
					!strings.Contains(d, "appctl logs -i 2 ") {
					t.Errorf("%s: the description does not name instance 2: %q", name, d)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, sc.want) {
				t.Errorf("firing at %s: %q\nwant %q", horizon, got, sc.want)
			}
		})
	}
	if untested := slices.DeleteFunc(slices.Sorted(maps.Keys(wantAlerts)), func(a string) bool { return tested[a] }); len(untested) > 0 {
		t.Errorf("no scenario makes these alerts fire: %v", untested)
	}
}

// indent indents each line of s, as promqltest wants the series of a load
// command.
func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n" }

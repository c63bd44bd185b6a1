package prometheus

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// wantAlerts are the alerts alerts.yml defines, with their for: durations.
var wantAlerts = map[string]time.Duration{
	"AppSocketNotListening":   time.Minute,
	"AppInstanceDown":         time.Minute,
	"AppInstanceRestarting":   0,
	"AppInstanceWatchdogKill": 0,
	"AppMetricsStale":         0,
	"AppInstanceTargetDown":   2 * time.Minute,
	"AppHighErrorRate":        5 * time.Minute,
}

// targetLabels are the labels every scraped series gets from its target:
// job and instance from Prometheus, host and unit from the relabelling in
// prometheus.yml.
var targetLabels = []string{"job", "instance", "host", "unit"}

// outsideSeries are the series the rules read that neither appctl metrics
// nor the app serves, with their labels: up is recorded by Prometheus for
// every scrape; node_textfile_mtime_seconds by node_exporter's textfile
// collector for each file it reads.
var outsideSeries = series{
	"up":                          {},
	"node_textfile_mtime_seconds": {"file"},
}

// alerts.yml loads strictly, as Prometheus and promtool check rules load
// it, and every alert has its severity, its for: duration and annotations
// telling the operator what to run.
func TestRulesLoad(t *testing.T) {
	groups, err := LoadRules("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Duration{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("recording rule %s: alerts.yml holds alerts only", r.Record)
				continue
			}
			got[r.Alert] = time.Duration(r.For)
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || !strings.Contains(r.Annotations["description"], "`appctl ") &&
				!strings.Contains(r.Annotations["description"], "`systemctl ") {
				t.Errorf("%s: want a summary and a description naming the command to run: %v", r.Alert, r.Annotations)
			}
		}
	}
	if !maps.Equal(got, wantAlerts) {
		t.Errorf("alerts and for: %v\nwant %v", got, wantAlerts)
	}
}

// Every series a rule reads exists: unitkit_* as appctl metrics emits
// them, app_*, go_* and process_* as the real app serves them on its
// metrics port, and the few that Prometheus and node_exporter make; and
// every label a rule matches on is one those series carry.
func TestRuleSeriesExist(t *testing.T) {
	groups, err := LoadRules("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	known := series{}
	maps.Copy(known, outsideSeries)
	maps.Copy(known, herdSeries(t))
	maps.Copy(known, appSeries(t))
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			sels, err := Selectors(r.Expr)
			if err != nil {
				t.Fatalf("%s: %v", r.Alert, err)
			}
			for _, vs := range sels {
				name := MetricName(vs)
				lbls, ok := known[name]
				if !ok {
					t.Errorf("%s reads %q, which nothing serves", r.Alert, vs)
					continue
				}
				for _, l := range MatchedLabels(vs) {
					if !slices.Contains(lbls, l) && !slices.Contains(targetLabels, l) {
						t.Errorf("%s matches on label %s of %s, which has only %v and the target's %v", r.Alert, l, name, lbls, targetLabels)
					}
				}
			}
		}
	}
}

package prometheus

import (
	"strconv"
	"testing"
	"time"
)

// prometheus.yml loads strictly, names the rule file, and has the two jobs
// alerts.yml refers to, scraped every 15 s like the textfile is written.
func TestConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RuleFiles) != 1 {
		t.Errorf("rule_files %v, want the one alert file", cfg.RuleFiles)
	}
	for _, job := range []string{"app", "node"} {
		sc, err := ScrapeConfig(cfg, job)
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Duration(sc.ScrapeInterval); got != 15*time.Second {
			t.Errorf("job %s scrapes every %s, want 15s", job, got)
		}
		if sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s", job, sc.MetricsPath)
		}
	}
}

// The app job turns a target's port, METRICS_PORT_BASE+N with the base
// 18000, into unit="app@N.service", for every N from 1 to 999, and both
// jobs give the host without the port.
func TestRelabelling(t *testing.T) {
	cfg, err := LoadConfig("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	app, err := ScrapeConfig(cfg, "app")
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 999; n++ {
		for _, host := range []string{"app-host.example", "10.0.0.7", "[2001:db8::7]"} {
			addr := host + ":" + strconv.Itoa(18000+n)
			lbls, keep := Relabel(app, addr)
			want := "app@" + strconv.Itoa(n) + ".service"
			if !keep || lbls.Get("unit") != want || lbls.Get("host") != host {
				t.Fatalf("target %s: keep=%v unit=%q host=%q, want unit=%q host=%q", addr, keep, lbls.Get("unit"), lbls.Get("host"), want, host)
			}
		}
	}
	// A port outside the instances' range gets no unit label rather than
	// a wrong one.
	for _, addr := range []string{"h:18000", "h:8080", "h:19001"} {
		if lbls, _ := Relabel(app, addr); lbls.Get("unit") != "" {
			t.Errorf("target %s: unit=%q, want none", addr, lbls.Get("unit"))
		}
	}
	node, err := ScrapeConfig(cfg, "node")
	if err != nil {
		t.Fatal(err)
	}
	if lbls, keep := Relabel(node, "app-host.example:9100"); !keep || lbls.Get("host") != "app-host.example" || lbls.Get("unit") != "" {
		t.Errorf("node target: keep=%v labels %v", keep, lbls)
	}
}

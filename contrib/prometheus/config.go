package prometheus

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
)

// LoadConfig reads a Prometheus configuration file as Prometheus does:
// strictly, with every section validated.
func LoadConfig(path string) (*config.Config, error) {
	cfg, err := config.LoadFile(path, false, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return cfg, nil
}

// ScrapeConfig returns the scrape job named job in cfg.
func ScrapeConfig(cfg *config.Config, job string) (*config.ScrapeConfig, error) {
	scs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return nil, fmt.Errorf("scrape configurations: %w", err)
	}
	for _, sc := range scs {
		if sc.JobName == job {
			return sc, nil
		}
	}
	return nil, fmt.Errorf("no scrape job %q", job)
}

// Relabel returns the labels job's relabelling gives the target at
// address, starting from the labels Prometheus sets itself, and whether
// the target is kept.
func Relabel(sc *config.ScrapeConfig, address string) (labels.Labels, bool) {
	lb := labels.NewBuilder(labels.FromStrings(
		"__address__", address, "job", sc.JobName,
		"__scheme__", sc.Scheme, "__metrics_path__", sc.MetricsPath))
	keep := relabel.ProcessBuilder(lb, sc.RelabelConfigs...)
	return lb.Labels(), keep
}

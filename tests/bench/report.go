package main

import (
	"fmt"
	"slices"
	"strings"
)

// row is one figure: the median of its runs, with their range, and what it
// is compared with.
type row struct {
	Metric    string    `json:"metric"`
	Unit      string    `json:"unit"`
	Runs      []float64 `json:"runs"`
	Median    float64   `json:"median"`
	Min       float64   `json:"min"`
	Max       float64   `json:"max"`
	Reference string    `json:"reference,omitempty"` // the same figure elsewhere, e.g. the plain process
	Target    string    `json:"target,omitempty"`
	Met       *bool     `json:"met,omitempty"`
}

// report is everything one bench run measured.
type report struct {
	Date    string            `json:"date"`
	Machine map[string]string `json:"machine"`
	Options string            `json:"options"`
	Rows    []row             `json:"rows"`
}

// newRow summarises runs; goal, when not nil, says whether the median met
// the target.
func newRow(metric, unit string, runs []float64, reference, target string, goal func(float64) bool) row {
	sorted := slices.Clone(runs)
	slices.Sort(sorted)
	r := row{Metric: metric, Unit: unit, Runs: runs, Reference: reference, Target: target}
	if len(sorted) > 0 {
		r.Median, r.Min, r.Max = sorted[len(sorted)/2], sorted[0], sorted[len(sorted)-1]
	}
	if goal != nil {
		met := goal(r.Median)
		r.Met = &met
	}
	return r
}

func (r report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## unitkit benchmark, %s\n\n", r.Date)
	fmt.Fprintf(&b, "Machine: %s, %s CPUs, %s, kernel %s, %s. %s.\n\n",
		r.Machine["cpu"], r.Machine["cpus"], r.Machine["memory"], r.Machine["kernel"], r.Machine["systemd"], r.Options)
	b.WriteString("| figure | median | range | compared with | target |\n|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		target := row.Target
		if row.Met != nil {
			target += map[bool]string{true: " ✅", false: " ❌ missed"}[*row.Met]
		}
		fmt.Fprintf(&b, "| %s | %s | %s–%s | %s | %s |\n", row.Metric, format(row.Median, row.Unit),
			format(row.Min, row.Unit), format(row.Max, row.Unit), row.Reference, target)
	}
	return b.String()
}

func format(v float64, unit string) string {
	switch unit {
	case "ratio":
		return fmt.Sprintf("%.2f", v)
	case "rps":
		return fmt.Sprintf("%.0f/s", v)
	case "ms":
		if v < 10 {
			return fmt.Sprintf("%.2f ms", v)
		}
		return fmt.Sprintf("%.0f ms", v)
	case "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	case "count":
		return fmt.Sprintf("%.0f", v)
	case "per":
		return fmt.Sprintf("%.2f", v)
	case "share":
		return fmt.Sprintf("%.0f%%", 100*v)
	case "percent":
		return fmt.Sprintf("%.1f%%", v)
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "µs":
		return fmt.Sprintf("%.0f µs", v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

// Package prometheus checks the Prometheus configuration in this folder —
// prometheus.yml (the scrape jobs) and alerts.yml (the alert rules) — with
// Prometheus's own code, so that what an operator installs loads in
// Prometheus and alerts on metrics that exist.
//
// LoadConfig and LoadRules read the files strictly (unknown fields are
// errors, as promtool check config and check rules would report); Relabel
// applies a job's relabelling to a target; Selectors lists the series an
// expression reads; NewAlertingRules and Firing run the rules over stored
// series as Prometheus's rule manager does, for: durations included. The
// tests use them to check every metric name a rule uses against what
// appctl metrics emits (the collector in internal/metrics) and what the
// real app serves on its metrics port, and to replay each alert on
// synthetic series: it fires when it should and stays silent on a healthy
// herd.
package prometheus

package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/unitkit/unitkit/activation"
)

// metrics is what the instance exposes on /metrics: a registry of its own
// (never the global default one) and the per-route request counter.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	log      *slog.Logger
}

// newMetrics returns a registry holding the instance's counters
// (app_requests_total, app_requests_in_flight), the per-route counter
// app_http_requests_total{path,code}, and the process and Go runtime
// collectors.
func newMetrics(inst *activation.Instance) (*metrics, error) {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "app_http_requests_total",
			Help: "HTTP responses by route (\"other\" for unknown paths) and status code.",
		}, []string{"path", "code"}),
		log: inst.Logger(),
	}
	served := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "app_requests_total",
		Help: "Requests answered by this instance since it started, probes excluded.",
	}, func() float64 { return float64(inst.Stats().Served) })
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "app_requests_in_flight",
		Help: "Requests this instance is serving now.",
	}, func() float64 { return float64(inst.Stats().InFlight) })
	for _, c := range []prometheus.Collector{
		served, inFlight, m.requests,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics collector: %w", err)
		}
	}
	return m, nil
}

// instrument counts every response of h in app_http_requests_total under
// the given path label, leaving out the instance's own canary requests. The
// label must be one of a fixed set of routes.
func (m *metrics) instrument(path string, h http.Handler) http.Handler {
	counted := promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(prometheus.Labels{"path": path}), h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if activation.IsCanary(r.Context()) {
			h.ServeHTTP(w, r)
			return
		}
		counted.ServeHTTP(w, r)
	})
}

// handler serves the registry in the Prometheus text format, logging
// collection errors through the instance's logger.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelError),
	})
}

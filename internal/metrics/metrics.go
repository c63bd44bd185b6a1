// Package metrics expresses what systemd knows about a unitkit service —
// its socket, its instances and how many of them start at boot — as
// Prometheus metrics, for appctl metrics. Each metric carries the label
// unit, the systemd unit it is about (never instance, the label Prometheus
// gives the scrape target):
//
//	unitkit_socket_listening{unit="app.socket"}          1 when the socket is active (listening), else 0
//	unitkit_socket_queued_connections{unit="app.socket"} connections waiting in its accept queue now
//	unitkit_socket_backlog{unit="app.socket"}            the accept queue's limit (Backlog=)
//	unitkit_instances_desired{unit="app.target"}         instances enabled, i.e. started at boot: what appctl scale recorded
//	unitkit_instance_up{unit="app@1.service"}            1 when systemd reports the instance active (running or reloading), else 0
//	unitkit_instance_enabled{unit="app@1.service"}       1 when it starts at boot, else 0
//	unitkit_instance_restarts_total{unit=…}              automatic restarts (NRestarts) since systemd loaded the unit
//	unitkit_instance_watchdog_kills_total{unit=…}        times systemd failed it with result 'watchdog' this boot
//	unitkit_instance_backoff_seconds{unit=…}             seconds until the next attempt of an instance backing off, else 0
//	unitkit_instance_failures_in_a_row{unit=…}           failures in a row of an instance backing off, else 0
//	unitkit_instance_memory_restarts_total{unit=…}       times it stopped for its memory limit this boot
//
// The instances are those systemd has loaded plus those enabled. systemd's
// own connection counters (NAccepted, NConnections) are not exported: they
// count only for Accept=yes sockets, and a herd's socket is Accept=no, so
// they would always be zero; the accept queue is what shows a backlog of
// work.
package metrics

import (
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/unitkit/unitkit/internal/herd"
)

// Metric names.
const (
	SocketListening   = "unitkit_socket_listening"
	SocketQueued      = "unitkit_socket_queued_connections"
	SocketBacklog     = "unitkit_socket_backlog"
	InstancesDesired  = "unitkit_instances_desired"
	InstanceUp        = "unitkit_instance_up"
	InstanceEnabled   = "unitkit_instance_enabled"
	InstanceRestarts  = "unitkit_instance_restarts_total"
	InstanceWatchdogs = "unitkit_instance_watchdog_kills_total"
	InstanceBackoff   = "unitkit_instance_backoff_seconds"
	InstanceFailures  = "unitkit_instance_failures_in_a_row"
	InstanceMemory    = "unitkit_instance_memory_restarts_total"
)

// Names lists every metric the collector emits.
func Names() []string {
	return []string{SocketListening, SocketQueued, SocketBacklog, InstancesDesired,
		InstanceUp, InstanceEnabled, InstanceRestarts, InstanceWatchdogs, InstanceBackoff, InstanceFailures, InstanceMemory}
}

// State is what the metrics are made from: a snapshot of the service and
// the watchdog kills of its instance units this boot.
type State struct {
	Snapshot      herd.Snapshot
	WatchdogKills map[string]int // by unit, e.g. "app@3.service"
}

// NewRegistry returns a new registry, of its own, whose only collector
// reports s.
func NewRegistry(s State) (*prometheus.Registry, error) {
	c, err := newCollector(s)
	if err != nil {
		return nil, fmt.Errorf("herd metrics: %w", err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register the herd's metrics: %w", err)
	}
	return reg, nil
}

// Write writes what g gathers to w in the Prometheus text exposition
// format.
func Write(w io.Writer, g prometheus.Gatherer) error {
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return fmt.Errorf("write metrics: %w", err)
		}
	}
	return nil
}

// WriteTextfile writes what g gathers to path for node_exporter's textfile
// collector: into a new file in the same directory, renamed over path once
// complete, so that node_exporter never reads half a file.
func WriteTextfile(path string, g prometheus.Gatherer) error {
	if err := prometheus.WriteToTextfile(path, g); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/unitkit/unitkit/internal/herd"
	"github.com/unitkit/unitkit/internal/journal"
	"github.com/unitkit/unitkit/internal/metrics"
)

// textfileSuffix is what node_exporter's textfile collector requires of
// the files it reads.
const textfileSuffix = ".prom"

func (o *options) metricsCmd() *cobra.Command {
	var textfile string
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Print what systemd knows about the service as Prometheus metrics",
		Long: `metrics prints, in the Prometheus text exposition format, what systemd knows
about the service: whether the socket listens, its accept queue, how many
instances start at boot, and per instance whether it is up, whether it is
enabled, its automatic restarts, how often the watchdog killed it this
boot (counted in the journal), its crash back-off and how often it stopped
for its memory limit (MEMORY_LIMIT) this boot. Every metric has the label unit, the systemd
unit it is about:

  unitkit_socket_listening{unit="app.socket"}          1 or 0
  unitkit_socket_queued_connections{unit="app.socket"} connections waiting
  unitkit_socket_backlog{unit="app.socket"}            the queue's limit
  unitkit_instances_desired{unit="app.target"}         instances enabled
  unitkit_instance_up{unit="app@1.service"}            1 or 0
  unitkit_instance_enabled{unit="app@1.service"}       1 or 0
  unitkit_instance_restarts_total{unit="app@1.service"}
  unitkit_instance_watchdog_kills_total{unit="app@1.service"}
  unitkit_instance_backoff_seconds{unit="app@1.service"}
  unitkit_instance_failures_in_a_row{unit="app@1.service"}
  unitkit_instance_memory_restarts_total{unit="app@1.service"}

With --textfile PATH it writes them to PATH instead, atomically (a new file
renamed into place), for node_exporter's textfile collector; PATH must end
in .prom. The app-metrics.timer in contrib/prometheus runs this every 15 s.
The instances' own metrics (requests, Go runtime) are served by each
instance; see METRICS_PORT_BASE in /etc/default/app.

Counting watchdog kills reads the system journal, which needs root or
membership in the systemd-journal group; without it the command fails
rather than report zero.`,
		Example: "  appctl metrics\n  appctl metrics --textfile /var/lib/prometheus/node-exporter/app.prom",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("textfile") {
				if err := checkTextfile(textfile); err != nil {
					return usageError(err)
				}
			}
			return o.withHerd(cmd, func(h *herd.Herd) error { return o.writeMetrics(cmd.Context(), h, textfile) })
		},
	}
	cmd.Flags().StringVar(&textfile, "textfile", "", "write to this .prom file, atomically, instead of standard output")
	return cmd
}

// checkTextfile rejects a --textfile that node_exporter would not read.
func checkTextfile(path string) error {
	base := filepath.Base(path)
	if !strings.HasSuffix(path, textfileSuffix) || base == textfileSuffix {
		return fmt.Errorf("--textfile %q: want a file name ending in %s, e.g. /var/lib/prometheus/node-exporter/app.prom", path, textfileSuffix)
	}
	return nil
}

// writeMetrics reads the state of h's service and writes its metrics to
// the textfile, or to standard output when textfile is "".
func (o *options) writeMetrics(ctx context.Context, h *herd.Herd, textfile string) error {
	snap, err := h.Snapshot(ctx)
	if err != nil {
		return err
	}
	kills, err := journal.WatchdogKills(ctx, h.App().Name())
	if err != nil {
		return err
	}
	reg, err := metrics.NewRegistry(metrics.State{Snapshot: snap, WatchdogKills: kills})
	if err != nil {
		return err
	}
	if textfile != "" {
		return metrics.WriteTextfile(textfile, reg)
	}
	return metrics.Write(o.stdout, reg)
}

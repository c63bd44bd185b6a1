package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unitkit/unitkit/internal/herd"
)

// unitLabel is the one label of every metric: the systemd unit.
const unitLabel = "unit"

// descs describe the metrics, one for each name in Names.
type descs struct {
	listening, queued, backlog, desired *prometheus.Desc
	up, enabled, restarts, watchdogs    *prometheus.Desc
	backoff, failures, memory           *prometheus.Desc
}

// newDescs returns the metrics' descriptions.
func newDescs() descs {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{unitLabel}, nil)
	}
	return descs{
		listening: d(SocketListening, "1 when systemd reports the socket unit active (listening), else 0."),
		queued:    d(SocketQueued, "Connections waiting in the socket's accept queue."),
		backlog:   d(SocketBacklog, "The limit of the socket's accept queue (Backlog=)."),
		desired:   d(InstancesDesired, "Instances enabled into the target, i.e. started at boot: the count appctl scale recorded."),
		up:        d(InstanceUp, "1 when systemd reports the instance active (running or reloading), else 0."),
		enabled:   d(InstanceEnabled, "1 when the instance is enabled (starts at boot), else 0."),
		restarts:  d(InstanceRestarts, "Automatic restarts of the instance (systemd's NRestarts) since systemd loaded the unit."),
		watchdogs: d(InstanceWatchdogs, "Times systemd failed the instance with result 'watchdog' since boot, from the journal."),
		backoff:   d(InstanceBackoff, "Seconds until the next attempt of an instance that waits because it keeps failing, else 0."),
		failures:  d(InstanceFailures, "Failures in a row of an instance that waits because it keeps failing, else 0."),
		memory:    d(InstanceMemory, "Times the instance stopped, drained, because its memory stayed above its limit (MEMORY_LIMIT) since boot."),
	}
}

// collector reports one State.
type collector struct {
	d      descs
	s      State
	target string // the unit the desired count is about, e.g. app.target
}

// newCollector returns a collector reporting s, or an error if the
// snapshot's service name is not valid.
func newCollector(s State) (collector, error) {
	app, err := herd.NewApp(s.Snapshot.App)
	if err != nil {
		return collector{}, err
	}
	return collector{d: newDescs(), s: s, target: app.Target()}, nil
}

// Describe sends the description of every metric.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.d.listening, c.d.queued, c.d.backlog, c.d.desired,
		c.d.up, c.d.enabled, c.d.restarts, c.d.watchdogs, c.d.backoff, c.d.failures, c.d.memory} {
		ch <- d
	}
}

// Collect sends the socket's metrics, the desired count and each
// instance's metrics.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.s.Snapshot
	sock := snap.Socket
	gauge := func(d *prometheus.Desc, v float64, unit string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, unit)
	}
	gauge(c.d.listening, boolValue(sock.State == "active"), sock.Unit)
	gauge(c.d.queued, float64(sock.Queued), sock.Unit)
	gauge(c.d.backlog, float64(sock.Backlog), sock.Unit)
	gauge(c.d.desired, float64(snap.Enabled()), c.target)
	for _, in := range snap.Instances {
		c.collectInstance(ch, in)
	}
}

// collectInstance sends the metrics of one instance.
func (c collector) collectInstance(ch chan<- prometheus.Metric, in herd.Instance) {
	send := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
		ch <- prometheus.MustNewConstMetric(d, t, v, in.Unit)
	}
	send(c.d.up, prometheus.GaugeValue, boolValue(in.Running()))
	send(c.d.enabled, prometheus.GaugeValue, boolValue(in.Enabled))
	send(c.d.restarts, prometheus.CounterValue, float64(in.Restarts))
	send(c.d.watchdogs, prometheus.CounterValue, float64(c.s.WatchdogKills[in.Unit]))
	var left, failures float64
	if b := in.Backoff; b != nil {
		left, failures = max(b.Next.Sub(c.s.Snapshot.Time).Seconds(), 0), float64(b.Failures)
	}
	send(c.d.backoff, prometheus.GaugeValue, left)
	send(c.d.failures, prometheus.GaugeValue, failures)
	send(c.d.memory, prometheus.CounterValue, float64(in.MemoryRestarts))
}

// boolValue is 1 for true and 0 for false.
func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

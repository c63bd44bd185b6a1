package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/unitkit/unitkit/tests/install"
)

// nodeApp is contrib/node's app, which the benchmark runs both under
// unitkit (with contrib/node's drop-in) and under PM2, so the two
// supervisors are compared on the same Node program.
var nodeApp = filepath.Join("contrib", "node", "app.js")

// nodeRows replaces the Go instances with the Node app under unitkit and
// measures throughput, reload failures and memory with 2 instances: the
// figures the PM2 rows are measured with too. It runs last: afterwards the
// herd runs Node.
func (b *bench) nodeRows(ctx context.Context) error {
	if err := install.NodeApp(ctx, b.s, filepath.Dir(nodeApp)); err != nil {
		return err
	}
	for _, args := range [][]string{{"scale", "2"}, {"reload"}} {
		if _, out, err := b.appctl(ctx, args...); err != nil {
			return fmt.Errorf("appctl %v: %w\n%s", args, err, out)
		}
	}
	for _, keepAlive := range []bool{false, true} {
		var rps, skews []float64
		for range b.o.runs {
			r := b.load(herdURL, "/", keepAlive)
			rps, skews = append(rps, float64(r.Total-r.Failed)/b.o.duration.Seconds()), append(skews, skew(r, 2))
		}
		b.add(newRow("Node app under unitkit, 2 instances, requests per second, "+mode(keepAlive), "rps", rps, "PM2 rows above: the same app.js", "", nil))
		b.add(newRow("Node app under unitkit, balance (busiest/idlest instance), 2 instances, "+mode(keepAlive), "ratio", skews, "", "", nil))
	}
	failed, p99, worst, err := b.underReload(herdURL, func() error {
		if _, out, err := b.appctl(ctx, "reload"); err != nil {
			return fmt.Errorf("reload: %w\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.add(newRow("Node app under unitkit, failed requests during appctl reload of 2 instances", "count", failed, "", "0", func(v float64) bool { return v == 0 }))
	b.add(newRow("Node app under unitkit, p99 latency during appctl reload", "ms", p99, "", "", nil))
	b.add(newRow("Node app under unitkit, max latency during appctl reload", "ms", worst, "", "", nil))
	return b.nodeMemory(ctx)
}

// nodeMemory reads the resident memory of the idle Node instances.
func (b *bench) nodeMemory(ctx context.Context) error {
	rss, err := b.idleRSS(ctx)
	if err != nil {
		return err
	}
	b.add(newRow("Node app under unitkit, RSS per idle instance", "MiB", rss, "supervision overhead: none (systemd only)", "", nil))
	return nil
}

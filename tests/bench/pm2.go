package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/unitkit/unitkit/tests/install"
)

// pm2Version is the PM2 the reference runs, installed from npm into a
// cache on the host (the sandbox has no network) before the sandbox boots.
const pm2Version = "7.0.4"

// pm2Port is where PM2's cluster listens (app.js reads $PORT).
const pm2Port = "9191"

const pm2URL = "http://127.0.0.1:" + pm2Port

// installPM2 installs PM2 into dir (once) and returns the pm2 command.
func installPM2(dir string) (string, error) {
	bin := filepath.Join(dir, "node_modules", ".bin", "pm2")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.Command("npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "pm2@"+pm2Version)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install pm2@%s (needs node and npm): %w\n%s", pm2Version, err, out)
	}
	return bin, nil
}

// pm2 runs PM2 in the sandbox.
func (b *bench) pm2(ctx context.Context, args ...string) (time.Duration, string, error) {
	start := time.Now()
	full := append([]string{"env", "PM2_HOME=/root/.pm2", "HOME=/root", "PORT=" + pm2Port, b.pm2Bin}, args...)
	out, err := b.s.Run(ctx, full...)
	return time.Since(start), out, err
}

// pm2Rows measures the PM2 reference: balance, reload, scale and memory
// (CPU-bound latency is measured against the herd's, in cpubound.go).
func (b *bench) pm2Rows(ctx context.Context) error {
	if b.pm2Bin == "" {
		return nil
	}
	if err := install.Tree(ctx, b.s, filepath.Dir(nodeApp), "/opt/bench/node"); err != nil {
		return err
	}
	if _, out, err := b.pm2(ctx, "start", "/opt/bench/node/app.js", "-i", "2", "--name", "node",
		"--wait-ready", "--listen-timeout", "5000", "--kill-timeout", "5000"); err != nil {
		return fmt.Errorf("pm2 start: %w\n%s", err, out)
	}
	for _, keepAlive := range []bool{false, true} {
		var rps, skews []float64
		for range b.o.runs {
			r := b.load(pm2URL, "/", keepAlive)
			rps, skews = append(rps, float64(r.Total-r.Failed)/b.o.duration.Seconds()), append(skews, skew(r, 2))
		}
		b.add(newRow("PM2 "+pm2Version+" cluster, 2 Node workers, requests per second, "+mode(keepAlive), "rps", rps, "", "", nil))
		b.add(newRow("PM2 balance (busiest/idlest worker), 2 workers, "+mode(keepAlive), "ratio", skews, "", "", nil))
	}
	if err := b.pm2Reload(ctx); err != nil {
		return err
	}
	if err := b.pm2Scale(ctx); err != nil {
		return err
	}
	return b.pm2Memory(ctx)
}

// pm2Reload measures pm2 reload under the same load as appctl reload.
func (b *bench) pm2Reload(ctx context.Context) error {
	failed, p99, worst, err := b.underReload(pm2URL, func() error {
		if _, out, err := b.pm2(ctx, "reload", "node"); err != nil {
			return fmt.Errorf("pm2 reload: %w\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.add(newRow("PM2 failed requests during pm2 reload of 2 workers", "count", failed, "", "", nil))
	b.add(newRow("PM2 p99 latency during pm2 reload", "ms", p99, "", "", nil))
	b.add(newRow("PM2 max latency during pm2 reload", "ms", worst, "", "", nil))
	return nil
}

// pm2Scale times pm2 scale from 1 to N workers.
func (b *bench) pm2Scale(ctx context.Context) error {
	for _, n := range []int{2, 4} {
		var took []float64
		for range b.o.runs {
			if _, out, err := b.pm2(ctx, "scale", "node", "1"); err != nil {
				return fmt.Errorf("pm2 scale 1: %w\n%s", err, out)
			}
			d, out, err := b.pm2(ctx, "scale", "node", strconv.Itoa(n))
			if err != nil {
				return fmt.Errorf("pm2 scale %d: %w\n%s", n, err, out)
			}
			took = append(took, ms(d))
		}
		b.add(newRow(fmt.Sprintf("PM2 pm2 scale 1→%d (process start included)", n), "ms", took, "", "", nil))
	}
	return nil
}

// pm2Memory reads the RSS of the PM2 daemon and of its idle workers.
func (b *bench) pm2Memory(ctx context.Context) error {
	rss, err := b.pm2WorkerRSS(ctx)
	if err != nil {
		return err
	}
	b.add(newRow("PM2 RSS per idle Node worker", "MiB", rss, "", "", nil))
	daemon, err := b.s.Run(ctx, "sh", "-c", "ps -o rss= -C 'PM2 v"+pm2Version+": God Daemon (/root/.pm2)' || ps -eo rss=,args= | grep 'God Daemon' | grep -v grep | head -1")
	if err == nil {
		var kb float64
		if _, err := fmt.Sscan(daemon, &kb); err == nil {
			b.add(newRow("PM2 daemon RSS (supervision overhead)", "MiB", []float64{kb / 1024}, "unitkit: no daemon", "", nil))
		}
	}
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/unitkit/unitkit/tests/install"
)

// expressDir is contrib/express, whose pm2-app.js (an Express app written
// for PM2) the benchmark runs unchanged under PM2 cluster mode and under
// unitkit through the Node package's preload module.
var expressDir = filepath.Join("contrib", "express")

// expressDropIn runs pm2-app.js as the instances, as appctl import writes
// it for contrib/express/ecosystem.config.js (the port stays the bench's).
const expressDropIn = `[Service]
ExecStart=
ExecStart=/usr/bin/node /opt/express/pm2-app.js
WorkingDirectory=/opt/express
Environment=NODE_OPTIONS="--require ` + nodePackage + `/preload.js"
Environment=UNITKIT_WAIT_READY=1 NODE_ENV=production NODE_APP_INSTANCE=%i
NotifyAccess=all
MemoryDenyWriteExecute=no
`

// nodePackage is where the packages install contrib/node for the service
// "app".
const nodePackage = "/usr/lib/app/node"

// expressRows measures the same Express app under unitkit (2 instances)
// and under PM2 (2 workers), run by run: throughput with fresh and
// keep-alive connections, failed requests during a reload, memory. It
// runs after nodeRows and leaves the herd running Express.
func (b *bench) expressRows(ctx context.Context) error {
	if b.pm2Bin == "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(expressDir, "node_modules", "express")); err != nil {
		return fmt.Errorf("%s has no node_modules: run npm ci there first", expressDir)
	}
	if err := b.installExpress(ctx); err != nil {
		return err
	}
	for _, keepAlive := range []bool{false, true} {
		var ratio, herd, pm2 []float64
		for range b.o.runs {
			h := b.load(herdURL, "/", keepAlive)
			p := b.load(pm2URL, "/", keepAlive)
			hr, pr := float64(h.Total-h.Failed)/b.o.duration.Seconds(), float64(p.Total-p.Failed)/b.o.duration.Seconds()
			ratio, herd, pm2 = append(ratio, hr/pr), append(herd, hr), append(pm2, pr)
		}
		b.add(newRow("Express app under unitkit over under PM2, 2 instances, requests per second, "+mode(keepAlive), "ratio", ratio,
			fmt.Sprintf("unitkit %s, PM2 %s", format(median(herd), "rps"), format(median(pm2), "rps")), "≥ 1.0", func(v float64) bool { return v >= 1.0 }))
	}
	return b.expressReloadAndMemory(ctx)
}

// installExpress puts contrib/express and the Node package into the
// sandbox, switches the herd to pm2-app.js and starts it under PM2 in
// place of the Node app.
func (b *bench) installExpress(ctx context.Context) error {
	if err := install.Tree(ctx, b.s, expressDir, "/opt/express"); err != nil {
		return err
	}
	if err := install.Tree(ctx, b.s, filepath.Join("contrib", "node"), nodePackage); err != nil {
		return err
	}
	if _, err := b.s.Run(ctx, "rm", "-f", "/etc/systemd/system/app@.service.d/node.conf"); err != nil {
		return err
	}
	if err := b.s.WriteFile("/etc/systemd/system/app@.service.d/express.conf", []byte(expressDropIn), 0o644); err != nil {
		return err
	}
	if _, err := b.s.Run(ctx, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	for _, args := range [][]string{{"scale", "2"}, {"reload"}} {
		if _, out, err := b.appctl(ctx, args...); err != nil {
			return fmt.Errorf("appctl %v: %w\n%s", args, err, out)
		}
	}
	if _, out, err := b.pm2(ctx, "delete", "node"); err != nil {
		return fmt.Errorf("pm2 delete node: %w\n%s", err, out)
	}
	if _, out, err := b.pm2(ctx, "start", "/opt/express/pm2-app.js", "-i", "2", "--name", "express",
		"--wait-ready", "--listen-timeout", "5000", "--kill-timeout", "5000"); err != nil {
		return fmt.Errorf("pm2 start express: %w\n%s", err, out)
	}
	return nil
}

// expressReloadAndMemory measures appctl reload against pm2 reload under
// the same load, and the idle memory of both.
func (b *bench) expressReloadAndMemory(ctx context.Context) error {
	failed, p99, _, err := b.underReload(herdURL, func() error {
		if _, out, err := b.appctl(ctx, "reload"); err != nil {
			return fmt.Errorf("appctl reload: %w\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	pm2Failed, pm2P99, _, err := b.underReload(pm2URL, func() error {
		if _, out, err := b.pm2(ctx, "reload", "express"); err != nil {
			return fmt.Errorf("pm2 reload express: %w\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.add(newRow("Express app under unitkit, failed requests during appctl reload of 2 instances", "count", failed,
		"PM2 (pm2 reload): "+format(median(pm2Failed), "count"), "0", func(v float64) bool { return v == 0 }))
	b.add(newRow("Express app under unitkit, p99 latency during appctl reload", "ms", p99,
		"PM2 (pm2 reload): "+format(median(pm2P99), "ms"), "", nil))
	rss, err := b.idleRSS(ctx)
	if err != nil {
		return err
	}
	pm2RSS, err := b.pm2WorkerRSS(ctx)
	if err != nil {
		return err
	}
	b.add(newRow("Express app under unitkit, RSS per idle instance", "MiB", rss,
		"PM2 worker "+format(median(pm2RSS), "MiB")+", plus its daemon", "", nil))
	return nil
}

// pm2WorkerRSS reads the resident memory of each PM2 worker, in MiB.
func (b *bench) pm2WorkerRSS(ctx context.Context) ([]float64, error) {
	_, out, err := b.pm2(ctx, "jlist")
	if err != nil {
		return nil, err
	}
	var procs []struct {
		Monit struct {
			Memory float64 `json:"memory"`
		} `json:"monit"`
	}
	if err := json.Unmarshal([]byte(out), &procs); err != nil {
		return nil, fmt.Errorf("pm2 jlist: %w", err)
	}
	var rss []float64
	for _, p := range procs {
		rss = append(rss, p.Monit.Memory/(1<<20))
	}
	return rss, nil
}

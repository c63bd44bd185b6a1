package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// pm2Rows measures the PM2 reference: balance, reload, scale, kill -9
// recovery and memory (CPU-bound latency is measured against the herd's,
// in cpubound.go). It keeps the medians the herd's scale and crash rows
// compare with in pm2Ref.
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
	if err := b.pm2Crash(ctx); err != nil {
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

// pm2Scale times pm2 scale from 1 to 2 and from 2 to 4 workers, as scale
// times appctl scale: from a quiet sandbox after the untimed scale to the
// starting count. pm2 scale answers once every new worker is ready
// (--wait-ready).
func (b *bench) pm2Scale(ctx context.Context) error {
	for _, st := range scaleSteps() {
		from, to := st[0], st[1]
		var took []float64
		for range b.o.runs {
			if err := b.pm2ScaleTo(ctx, from); err != nil {
				return err
			}
			if err := b.quiet(ctx); err != nil {
				return err
			}
			d, out, err := b.pm2(ctx, "scale", "node", strconv.Itoa(to))
			if err != nil {
				return fmt.Errorf("pm2 scale %d: %w\n%s", to, err, out)
			}
			took = append(took, ms(d))
		}
		key := scaleKey(from, to)
		r := newRow("PM2 "+key+" (process start included)", "ms", took, "", "", nil)
		b.pm2Ref[key] = r.Median
		b.add(r)
	}
	return nil
}

// pm2ScaleTo scales the Node app under PM2 to n workers, untimed; pm2
// scale fails with "Nothing to do" when it runs n already.
func (b *bench) pm2ScaleTo(ctx context.Context, n int) error {
	_, out, err := b.pm2(ctx, "scale", "node", strconv.Itoa(n))
	if err != nil && !strings.Contains(out, "Nothing to do") {
		return fmt.Errorf("pm2 scale %d: %w\n%s", n, err, out)
	}
	return nil
}

// pm2KillScript kills PM2's first worker of the app argv[2] with SIGKILL
// and prints the milliseconds until PM2 lists a new pid with status
// "online" for its pm_id (with --wait-ready, once the worker said ready).
// It reads the same process list as pm2 jlist, through one connection to
// the daemon kept open and polled every 5 ms: a pm2 jlist command takes
// longer to start than the restart it would time. It first waits until
// the worker has run argv[3] ms, so that PM2 counts a healthy worker's
// crash, not an unstable restart (min_uptime). argv[1] is PM2's module.
const pm2KillScript = `
const [mod, name, minUptime] = process.argv.slice(1);
const pm2 = require(mod);
const fail = (what, err) => { console.error(what + ': ' + err); process.exit(1); };
pm2.connect((err) => {
  if (err) fail('connect', err);
  pm2.list((err, list) => {
    if (err) fail('list', err);
    const w = list.filter((p) => p.name === name && p.pid).sort((a, b) => a.pm_id - b.pm_id)[0];
    if (!w) fail('list', 'no worker of ' + name + ' runs');
    setTimeout(() => {
      process.kill(w.pid, 'SIGKILL');
      const start = process.hrtime.bigint();
      const poll = () => pm2.list((err, list) => {
        const p = !err && list.find((x) => x.pm_id === w.pm_id);
        const took = Number(process.hrtime.bigint() - start) / 1e6;
        if (p && p.pid && p.pid !== w.pid && p.pm2_env.status === 'online') {
          console.log(took);
          process.exit(0);
        }
        if (took > 30000) fail('worker ' + w.pm_id, 'not online again within 30 s');
        setTimeout(poll, 5);
      });
      poll();
    }, Math.max(0, Number(minUptime) - (Date.now() - w.pm2_env.pm_uptime)));
  });
});
`

// pm2Crash times kill -9 of one of 2 workers until PM2 has it online
// again, under the same load as the herd's crash row.
func (b *bench) pm2Crash(ctx context.Context) error {
	if err := b.pm2ScaleTo(ctx, 2); err != nil {
		return err
	}
	module := filepath.Join(filepath.Dir(filepath.Dir(b.pm2Bin)), "pm2")
	took, failed, err := b.underCrash(pm2URL, func() (time.Duration, error) {
		// PM2's min_uptime is 1 s; 1.5 s leaves a margin.
		out, err := b.s.Run(ctx, "env", "PM2_HOME=/root/.pm2", "HOME=/root", "node", "-e", pm2KillScript, module, "node", "1500")
		if err != nil {
			return 0, fmt.Errorf("pm2 kill -9: %w", err)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if err != nil {
			return 0, fmt.Errorf("pm2 kill -9: %q: %w", out, err)
		}
		return time.Duration(v * float64(time.Millisecond)), nil
	})
	if err != nil {
		return err
	}
	r := newRow("PM2 "+pm2Kill9+", 2 workers (new pid, status online)", "ms", took, "", "", nil)
	b.pm2Ref[pm2Kill9] = r.Median
	b.add(r)
	b.add(newRow("PM2 failed requests around a kill -9 of a worker", "count", failed, "", "", nil))
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

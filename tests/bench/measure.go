package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
	"github.com/unitkit/unitkit/tests/sandbox"
)

// bench holds the sandbox and the rows measured so far.
type bench struct {
	s      *sandbox.Sandbox
	o      options
	pm2Bin string // pm2 command, "" to skip the PM2 reference
	useWrk bool   // also measure with Debian's wrk
	rows   []row
}

const (
	herdURL  = "http://127.0.0.1:8080"
	plainURL = "http://127.0.0.1:9090"
)

// all measures every figure in turn.
func (b *bench) all(ctx context.Context) error {
	if _, err := b.s.Run(ctx, "systemd-run", "--unit=plain", "--setenv=PORT=9090", "--setenv=INSTANCE=plain", "/usr/bin/app"); err != nil {
		return err
	}
	if b.useWrk {
		if err := b.haveWrk(ctx); err != nil {
			return err
		}
	}
	for _, step := range []func(context.Context) error{
		b.throughput, b.cpuBound, b.reload, b.scale, b.coldStart, b.crash, b.memory, b.status, b.pm2Rows, b.againstPM2, b.nodeRows, b.expressRows,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// appctl runs appctl in the sandbox and returns how long it took.
func (b *bench) appctl(ctx context.Context, args ...string) (time.Duration, string, error) {
	start := time.Now()
	out, err := b.s.Run(ctx, append([]string{"appctl"}, args...)...)
	return time.Since(start), out, err
}

// load runs one closed-loop load of o.duration against url+path.
func (b *bench) load(url, path string, keepAlive bool) loadtest.Result {
	l := loadtest.New(loadtest.Config{URL: url, KeepAlive: keepAlive, Dial: b.s.DialContext, Record: true})
	l.Run(b.o.clients, path)
	time.Sleep(b.o.duration)
	return l.Stop()
}

func (b *bench) add(r row) {
	b.rows = append(b.rows, r)
}

func mode(keepAlive bool) string {
	return map[bool]string{false: "fresh connections", true: "keep-alive"}[keepAlive]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// skew is the busiest instance's share over the idlest one's.
func skew(r loadtest.Result, instances int) float64 {
	if len(r.ByInstance) < instances {
		return 0 // an instance got nothing: infinite skew, reported as 0
	}
	lo, hi := int64(-1), int64(0)
	for _, n := range r.ByInstance {
		hi = max(hi, n)
		if lo < 0 || n < lo {
			lo = n
		}
	}
	return float64(hi) / float64(max(lo, 1))
}

func median(v []float64) float64 { return newRow("", "", v, "", "", nil).Median }

// reload measures failed requests and tail latency during appctl reload,
// as the herd ran before keep-alive connections were bounded and as it
// ships.
func (b *bench) reload(ctx context.Context) error {
	var beforeP99 float64
	for _, v := range []variant{before, shipped} {
		if err := b.configure(ctx, 4, v); err != nil {
			return err
		}
		failed, p99, worst, err := b.underReload(herdURL, func() error {
			_, out, err := b.appctl(ctx, "reload")
			if err != nil {
				return fmt.Errorf("reload: %w\n%s", err, out)
			}
			return nil
		})
		if err != nil {
			return err
		}
		tag, p99Target, p99Goal := "", "", (func(float64) bool)(nil)
		if v.name != "" {
			tag, beforeP99 = ", "+v.name, median(p99)
		} else {
			p99Target = "≤ " + format(beforeP99, "ms") + " (as before)"
			p99Goal = func(x float64) bool { return x <= beforeP99 }
		}
		b.add(newRow("failed requests during appctl reload of 4 instances"+tag, "count", failed, "", "0", func(v float64) bool { return v == 0 }))
		b.add(newRow("p99 latency during appctl reload"+tag, "ms", p99, "", p99Target, p99Goal))
		b.add(newRow("max latency during appctl reload"+tag, "ms", worst, "", "", nil))
	}
	return nil
}

// underReload runs reload o.runs times under 16 fresh and 16 keep-alive
// clients and returns, per run, the failed requests and the p99 and
// maximum latency in milliseconds.
func (b *bench) underReload(url string, reload func() error) (failed, p99, worst []float64, err error) {
	for range b.o.runs {
		l := loadtest.New(loadtest.Config{URL: url, Dial: b.s.DialContext, Record: true})
		k := loadtest.New(loadtest.Config{URL: url, Dial: b.s.DialContext, Record: true, KeepAlive: true})
		l.Run(b.o.clients/2, "/")
		k.Run(b.o.clients/2, "/")
		time.Sleep(200 * time.Millisecond)
		err := reload()
		time.Sleep(200 * time.Millisecond)
		rl, rk := l.Stop(), k.Stop()
		if err != nil {
			return nil, nil, nil, err
		}
		failed = append(failed, float64(rl.Failed+rk.Failed))
		p99 = append(p99, ms(max(rl.Percentile(0.99), rk.Percentile(0.99))))
		worst = append(worst, ms(max(rl.MaxLatency, rk.MaxLatency)))
	}
	return failed, p99, worst, nil
}

// scale times appctl scale from 1 to N until every instance is ready.
func (b *bench) scale(ctx context.Context) error {
	for _, n := range []int{2, 4} {
		var took []float64
		for range b.o.runs {
			if _, _, err := b.appctl(ctx, "scale", "1"); err != nil {
				return err
			}
			d, out, err := b.appctl(ctx, "scale", strconv.Itoa(n))
			if err != nil {
				return fmt.Errorf("scale %d: %w\n%s", n, err, out)
			}
			took = append(took, ms(d))
		}
		b.add(newRow(fmt.Sprintf("appctl scale 1→%d, all ready (process start included)", n), "ms", took, "", "< 1000 ms",
			func(v float64) bool { return v < 1000 }))
	}
	return nil
}

// coldStart times the first request to a socket with no instance running.
func (b *bench) coldStart(ctx context.Context) error {
	c := b.s.HTTPClient(false)
	var took []float64
	for range b.o.runs {
		if _, _, err := b.appctl(ctx, "scale", "0"); err != nil {
			return err
		}
		if _, err := b.s.Run(ctx, "systemctl", "stop", "app@1.service"); err != nil {
			return err
		}
		start := time.Now()
		resp, err := c.Get(herdURL + "/")
		if err != nil {
			return fmt.Errorf("cold start: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took = append(took, ms(time.Since(start)))
	}
	b.add(newRow("cold start: first request, no instance running", "ms", took, "", "< 50 ms", func(v float64) bool { return v < 50 }))
	return nil
}

// crash times kill -9 of an instance until systemd reports it ready again,
// under load, and counts the failed requests.
func (b *bench) crash(ctx context.Context) error {
	if _, _, err := b.appctl(ctx, "scale", "2"); err != nil {
		return err
	}
	var took, failed []float64
	for range b.o.runs {
		l := loadtest.New(loadtest.Config{URL: herdURL, Dial: b.s.DialContext})
		l.Run(b.o.clients/2, "/")
		time.Sleep(300 * time.Millisecond)
		pid, err := b.mainPID(ctx, "app@1.service")
		if err != nil {
			return err
		}
		if _, err := b.s.Run(ctx, "kill", "-9", pid); err != nil {
			return err
		}
		start := time.Now()
		for {
			p, _ := b.mainPID(ctx, "app@1.service")
			if p != pid && p != "0" && p != "" {
				break
			}
			if time.Since(start) > 30*time.Second {
				return fmt.Errorf("app@1 not back within 30s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, ms(time.Since(start)))
		time.Sleep(200 * time.Millisecond)
		failed = append(failed, float64(l.Stop().Failed))
	}
	b.add(newRow("crash recovery: kill -9 until ready again", "ms", took, "", "< 500 ms", func(v float64) bool { return v < 500 }))
	b.add(newRow("failed requests around a kill -9 (what the process held)", "count", failed, "", "", nil))
	return nil
}

func (b *bench) mainPID(ctx context.Context, unit string) (string, error) {
	out, err := b.s.Run(ctx, "systemctl", "show", "-p", "MainPID", "-p", "SubState", "--value", unit)
	f := strings.Fields(out)
	if err != nil || len(f) < 2 || f[1] != "running" {
		return "", err
	}
	return f[0], nil
}

// memory reads the resident memory of idle instances from appctl status.
func (b *bench) memory(ctx context.Context) error {
	if _, _, err := b.appctl(ctx, "scale", "4"); err != nil {
		return err
	}
	time.Sleep(time.Second)
	rss, err := b.idleRSS(ctx)
	if err != nil {
		return err
	}
	b.add(newRow("RSS per idle instance", "MiB", rss, "supervision overhead: none (systemd only)", "< 20 MiB",
		func(v float64) bool { return v < 20 }))
	return nil
}

// idleRSS reads each instance's resident memory, in MiB, from appctl
// status.
func (b *bench) idleRSS(ctx context.Context) ([]float64, error) {
	_, out, err := b.appctl(ctx, "status", "--json")
	if err != nil {
		return nil, err
	}
	var st struct {
		Instances []struct {
			RSS uint64 `json:"rss_bytes"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("status --json: %w", err)
	}
	var rss []float64
	for _, in := range st.Instances {
		rss = append(rss, float64(in.RSS)/(1<<20))
	}
	return rss, nil
}

// status times appctl status at 8 and 32 instances.
func (b *bench) status(ctx context.Context) error {
	for _, n := range []int{8, 32} {
		if _, out, err := b.appctl(ctx, "scale", strconv.Itoa(n), "--limit", "32"); err != nil {
			return fmt.Errorf("scale %d: %w\n%s", n, err, out)
		}
		var took []float64
		for range max(b.o.runs, 5) {
			d, _, err := b.appctl(ctx, "status")
			if err != nil {
				return err
			}
			took = append(took, ms(d))
		}
		target, goal := "", (func(float64) bool)(nil)
		if n == 32 {
			target, goal = "< 150 ms", func(v float64) bool { return v < 150 }
		}
		b.add(newRow(fmt.Sprintf("appctl status at %d instances (process start included)", n), "ms", took, "", target, goal))
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
)

// workPath is the CPU-bound request: 2 ms of spinning per request.
const workPath = "/work?ms=2"

// workRate is the open-loop rate for CPU-bound latency: about half of what
// two Node workers serve on 2 CPUs, so that neither side is saturated and
// both see the same offered load.
const workRate = 300

// cpuBound measures balance and p99 under CPU-bound requests, each herd
// run right after a run of the same load against the plain process, so
// that what the herd adds is seen apart from what Go's scheduler does.
func (b *bench) cpuBound(ctx context.Context) error {
	for _, n := range []int{2, 4} {
		if err := b.configure(ctx, n, shipped); err != nil {
			return err
		}
		var p99, plainP99, ratio, skews []float64
		for range b.o.runs {
			p := b.load(plainURL, workPath, false)
			h := b.load(herdURL, workPath, false)
			p99, plainP99 = append(p99, ms(h.Percentile(0.99))), append(plainP99, ms(p.Percentile(0.99)))
			ratio = append(ratio, ms(h.Percentile(0.99))/ms(p.Percentile(0.99)))
			skews = append(skews, skew(h, n))
		}
		tag := fmt.Sprintf("%d instances, %s, fresh connections", n, workPath)
		b.add(newRow("p99 latency, "+tag, "ms", p99, "", "", nil))
		b.add(newRow("p99 latency over one plain process's, "+tag, "ratio", ratio,
			"plain process p99 "+format(median(plainP99), "ms"), "", nil))
		b.add(newRow("balance, "+tag, "ratio", skews, "", "≤ 1.1", func(v float64) bool { return v > 0 && v <= 1.1 }))
	}
	return nil
}

// againstPM2 compares the herd's CPU-bound latency with PM2's with 2
// workers: closed loop (32 clients, each herd run right before a PM2 run)
// and open loop at the same constant rate for both.
func (b *bench) againstPM2(ctx context.Context) error {
	if b.pm2Bin == "" {
		return nil
	}
	if err := b.pm2ScaleTo(ctx, 2); err != nil {
		return err
	}
	var pm2P99, pm2RPS, pm2Skews []float64
	for _, n := range []int{2, 4} {
		if err := b.configure(ctx, n, shipped); err != nil {
			return err
		}
		var ratio, rps []float64
		for range b.o.runs {
			h := b.load(herdURL, workPath, false)
			p := b.load(pm2URL, workPath, false)
			ratio = append(ratio, ms(h.Percentile(0.99))/ms(p.Percentile(0.99)))
			rps = append(rps, float64(h.Total-h.Failed)/b.o.duration.Seconds())
			pm2P99, pm2RPS = append(pm2P99, ms(p.Percentile(0.99))), append(pm2RPS, float64(p.Total-p.Failed)/b.o.duration.Seconds())
			pm2Skews = append(pm2Skews, skew(p, 2))
		}
		tag := fmt.Sprintf("%d instances, %s, fresh connections, %d clients", n, workPath, b.o.clients)
		b.add(newRow("p99 latency over PM2's with 2 workers, closed loop, "+tag, "ratio", ratio,
			"PM2 p99 "+format(median(pm2P99), "ms"), "≤ 1.0", func(v float64) bool { return v <= 1.0 }))
		b.add(newRow("requests per second, closed loop, "+tag, "rps", rps,
			"PM2 "+format(median(pm2RPS), "rps"), "", nil))
	}
	b.add(newRow("PM2 p99 latency, 2 workers, "+workPath+", fresh connections, closed loop", "ms", pm2P99, "", "", nil))
	b.add(newRow("PM2 requests per second, 2 workers, "+workPath+", closed loop", "rps", pm2RPS, "", "", nil))
	b.add(newRow("PM2 balance, 2 workers, "+workPath+", fresh connections", "ratio", pm2Skews, "", "", nil))
	return b.workOpenLoop(ctx)
}

// workOpenLoop offers the herd (2 instances) and PM2 (2 workers) the same
// constant rate of CPU-bound requests, alternating run by run.
func (b *bench) workOpenLoop(ctx context.Context) error {
	if err := b.configure(ctx, 2, shipped); err != nil {
		return err
	}
	var ratio, herdP99, pm2P99 []float64
	for range b.o.runs {
		h := b.rate(herdURL)
		p := b.rate(pm2URL)
		herdP99, pm2P99 = append(herdP99, ms(h.Percentile(0.99))), append(pm2P99, ms(p.Percentile(0.99)))
		ratio = append(ratio, ms(h.Percentile(0.99))/ms(p.Percentile(0.99)))
	}
	tag := fmt.Sprintf("2 instances, %s, fresh connections, open loop %d requests/s", workPath, workRate)
	b.add(newRow("p99 latency, "+tag, "ms", herdP99, "", "", nil))
	b.add(newRow("p99 latency over PM2's with 2 workers, "+tag, "ratio", ratio,
		"PM2 p99 "+format(median(pm2P99), "ms"), "≤ 1.0", func(v float64) bool { return v <= 1.0 }))
	return nil
}

// rate runs the open-loop CPU-bound load once against url.
func (b *bench) rate(url string) loadtest.Result {
	l := loadtest.New(loadtest.Config{URL: url, Dial: b.s.DialContext, Record: true})
	l.RunRate(workRate, b.o.clients, workPath)
	time.Sleep(b.o.duration)
	return l.Stop()
}

package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
)

// sample is one load run against one server.
type sample struct {
	rps    float64
	p99    float64 // ms
	skew   float64 // busiest/idlest instance (internal/loadtest only)
	errors int64
	genCPU float64 // share of all CPUs the load generator used
	ctxsw  float64 // server context switches per request
	srvCPU float64 // share of all CPUs the servers used
	perReq float64 // server CPU time per request, µs
	idle   float64 // share of all CPUs left idle
}

// variant is one configuration of the herd, written to /etc/default/app.
type variant struct {
	name string   // shown in the rows; "" for the shipped defaults
	env  []string // lines of /etc/default/app besides the placement
}

var (
	shipped = variant{}
	// sharedAccept leaves Go's registration of the socket as it is: every
	// instance wakes for every connection.
	sharedAccept = variant{"Go's accept loop as is (ACCEPT_MODE=shared)", []string{"ACCEPT_MODE=shared"}}
	// unbounded keeps every keep-alive connection on its first instance.
	unbounded = variant{"unbounded keep-alive (KEEPALIVE_REQUESTS=0, KEEPALIVE_TIME=0)", []string{"KEEPALIVE_REQUESTS=0", "KEEPALIVE_TIME=0"}}
	// before is how the herd ran before keep-alive connections were bounded.
	before = variant{"as before: unbounded keep-alive", []string{"KEEPALIVE_REQUESTS=0", "KEEPALIVE_TIME=0"}}
)

// throughput compares the herd at N = 1, 2, 4 and 8 instances (placed,
// appctl's default) with the plain process, each herd run right after a
// plain run of the same load, with both load generators; then the
// variants with one factor removed.
func (b *bench) throughput(ctx context.Context) error {
	for _, keepAlive := range []bool{false, true} {
		for _, n := range []int{1, 2, 4, 8} {
			if err := b.herdVsPlain(ctx, shipped, n, keepAlive, b.useWrk && (n == 2 || n == 4)); err != nil {
				return err
			}
		}
		variants := []variant{sharedAccept}
		if keepAlive {
			variants = append(variants, unbounded)
		}
		for _, v := range variants {
			for _, n := range []int{2, 4} {
				if err := b.herdVsPlain(ctx, v, n, keepAlive, false); err != nil {
					return err
				}
			}
		}
	}
	return b.openLoop(ctx)
}

// openLoop measures latency under constant-rate keep-alive load, where a
// closed loop would hide an instance that stalls: requests keep coming at
// their time, and their latency counts from then.
func (b *bench) openLoop(ctx context.Context) error {
	const rate, workers = 2000, 64
	for _, v := range []variant{shipped, sharedAccept} {
		if err := b.configure(ctx, 2, v); err != nil {
			return err
		}
		var p99, p999, worst []float64
		for range b.o.runs {
			l := loadtest.New(loadtest.Config{URL: herdURL, KeepAlive: true, Dial: b.s.DialContext, Record: true})
			l.RunRate(rate, workers, "/")
			time.Sleep(b.o.duration)
			r := l.Stop()
			p99, p999 = append(p99, ms(r.Percentile(0.99))), append(p999, ms(r.Percentile(0.999)))
			worst = append(worst, ms(r.MaxLatency))
		}
		tag := fmt.Sprintf("2 instances, keep-alive, open loop %d requests/s", rate)
		if v.name != "" {
			tag += ", " + v.name
		}
		b.add(newRow("p99 latency, "+tag, "ms", p99, "", "", nil))
		b.add(newRow("p99.9 latency, "+tag, "ms", p999, "", "", nil))
		b.add(newRow("max latency, "+tag, "ms", worst, "", "", nil))
	}
	return b.configure(ctx, 4, shipped)
}

// herdVsPlain measures n instances of variant v against the plain process.
func (b *bench) herdVsPlain(ctx context.Context, v variant, n int, keepAlive, withWrk bool) error {
	if err := b.configure(ctx, n, v); err != nil {
		return err
	}
	pids, err := b.instancePIDs(ctx, n)
	if err != nil {
		return err
	}
	plainPID, err := b.mainPID(ctx, "plain.service")
	if err != nil || plainPID == "" {
		return fmt.Errorf("plain.service is not running: %v", err)
	}
	var herd, plain, herdWrk, plainWrk []sample
	for range b.o.runs {
		p, err := b.sampleLoad(ctx, plainURL, []string{plainPID}, 1, keepAlive)
		if err != nil {
			return err
		}
		h, err := b.sampleLoad(ctx, herdURL, pids, n, keepAlive)
		if err != nil {
			return err
		}
		plain, herd = append(plain, p), append(herd, h)
		if withWrk {
			pw, err := b.sampleWrk(ctx, plainURL, []string{plainPID}, keepAlive)
			if err != nil {
				return err
			}
			hw, err := b.sampleWrk(ctx, herdURL, pids, keepAlive)
			if err != nil {
				return err
			}
			plainWrk, herdWrk = append(plainWrk, pw), append(herdWrk, hw)
		}
	}
	b.throughputRows(v, n, keepAlive, "internal/loadtest", herd, plain)
	if withWrk {
		b.throughputRows(v, n, keepAlive, "wrk", herdWrk, plainWrk)
	}
	return nil
}

// throughputRows adds the rows of one herd configuration and generator.
func (b *bench) throughputRows(v variant, n int, keepAlive bool, gen string, herd, plain []sample) {
	tag := fmt.Sprintf("%d %s, %s", n, plural(n, "instance"), mode(keepAlive))
	if v.name != "" {
		tag += ", " + v.name
	}
	tag += " [" + gen + "]"
	var ratio, p99, skews, ctxsw, plainCtxsw, genCPU []float64
	var errs float64
	for k := range herd {
		ratio = append(ratio, herd[k].rps/plain[k].rps)
		p99 = append(p99, herd[k].p99)
		skews = append(skews, herd[k].skew)
		ctxsw, plainCtxsw = append(ctxsw, herd[k].ctxsw), append(plainCtxsw, plain[k].ctxsw)
		genCPU = append(genCPU, herd[k].genCPU)
		errs += float64(herd[k].errors)
	}
	ref := fmt.Sprintf("plain process %s, p99 %s", format(median(each(plain, func(x sample) float64 { return x.rps })), "rps"),
		format(median(each(plain, func(x sample) float64 { return x.p99 })), "ms"))
	target, goal := ratioTarget(n, v)
	b.add(newRow("throughput ratio to one plain process, "+tag, "ratio", ratio, ref, target, goal))
	b.add(newRow("p99 latency, "+tag, "ms", p99, "", "", nil))
	if gen == "internal/loadtest" && n > 1 {
		bt, bg := balanceTarget(keepAlive, v)
		b.add(newRow("balance (busiest/idlest instance; 0: one got nothing), "+tag, "ratio", skews, "", bt, bg))
	}
	b.add(newRow("server context switches per request, "+tag, "per", ctxsw,
		"plain process "+format(median(plainCtxsw), "per"), "", nil))
	b.costRows(tag, herd, plain)
	b.add(newRow("load generator's share of the CPUs, "+tag, "share", genCPU, "", "", nil))
	if errs > 0 {
		b.add(newRow("failed requests, "+tag, "count", []float64{errs}, "", "0", func(v float64) bool { return v == 0 }))
	}
}

// costRows split each run's throughput ratio into its two factors: the
// CPU time the servers got (herd over plain) and the CPU time one request
// costs them (plain over herd). Their product is the throughput ratio; the
// machine's idle share says whether CPU was left for the servers to take.
func (b *bench) costRows(tag string, herd, plain []sample) {
	var got, cost, perReq, idle []float64
	for k := range herd {
		got = append(got, herd[k].srvCPU/max(plain[k].srvCPU, 1e-9))
		cost = append(cost, plain[k].perReq/max(herd[k].perReq, 1e-9))
		perReq, idle = append(perReq, herd[k].perReq), append(idle, herd[k].idle)
	}
	plainOf := func(f func(sample) float64, unit string) string {
		return "plain process " + format(median(each(plain, f)), unit)
	}
	b.add(newRow("server CPU time per request, "+tag, "µs", perReq, plainOf(func(x sample) float64 { return x.perReq }, "µs"), "", nil))
	b.add(newRow("servers' share of the CPUs, "+tag, "share", each(herd, func(x sample) float64 { return x.srvCPU }),
		plainOf(func(x sample) float64 { return x.srvCPU }, "share"), "", nil))
	b.add(newRow("throughput factor: CPU the servers got, herd over plain, "+tag, "ratio", got, "", "", nil))
	b.add(newRow("throughput factor: CPU per request, plain over herd, "+tag, "ratio", cost, "", "", nil))
	b.add(newRow("idle share of the CPUs, "+tag, "share", idle, plainOf(func(x sample) float64 { return x.idle }, "share"), "", nil))
}

// ratioTarget is the goal for the shipped herd: at least the plain
// process at N = CPUs, 0.95 of it at N = 2 × CPUs.
func ratioTarget(n int, v variant) (string, func(float64) bool) {
	cpus := runtime.NumCPU()
	switch {
	case v.name != "":
		return "", nil
	case n == cpus:
		return "≥ 1.0", func(x float64) bool { return x >= 1.0 }
	case n == 2*cpus:
		return "≥ 0.95", func(x float64) bool { return x >= 0.95 }
	}
	return "", nil
}

func balanceTarget(keepAlive bool, v variant) (string, func(float64) bool) {
	if v.name != "" {
		return "", nil
	}
	limit := map[bool]float64{false: 1.1, true: 1.2}[keepAlive]
	return fmt.Sprintf("≤ %.1f", limit), func(x float64) bool { return x > 0 && x <= limit }
}

// sampleLoad runs internal/loadtest once against url, served by pids
// (n instances), measuring what the servers, this process and the machine
// spent on it.
func (b *bench) sampleLoad(ctx context.Context, url string, pids []string, n int, keepAlive bool) (sample, error) {
	var r loadtest.Result
	var gen time.Duration
	sp, err := b.spend(ctx, pids, func() error {
		cpu0 := selfCPU()
		r = b.load(url, "/", keepAlive)
		gen = selfCPU() - cpu0
		return nil
	})
	if err != nil {
		return sample{}, err
	}
	served := float64(r.Total - r.Failed)
	s := sp.sample(served)
	s.rps, s.p99, s.skew, s.errors = served/b.o.duration.Seconds(), ms(r.Percentile(0.99)), skew(r, n), r.Failed
	s.genCPU = gen.Seconds() / b.o.duration.Seconds() / float64(runtime.NumCPU())
	return s, nil
}

// sampleWrk runs wrk once against url, served by pids.
func (b *bench) sampleWrk(ctx context.Context, url string, pids []string, keepAlive bool) (sample, error) {
	var r wrkResult
	sp, err := b.spend(ctx, pids, func() (err error) {
		r, err = b.wrk(ctx, url, keepAlive)
		return err
	})
	if err != nil {
		return sample{}, err
	}
	s := sp.sample(r.rps * sp.wall.Seconds()) // wrk runs whole seconds
	s.rps, s.p99, s.errors = r.rps, r.p99, r.errors
	s.genCPU = r.cpu / b.o.duration.Seconds() / float64(runtime.NumCPU())
	return s, nil
}

// spent is what one load run cost the servers and the machine.
type spent struct {
	server usage
	idle   float64       // share of the machine's CPU time left idle
	wall   time.Duration // how long the run took
}

// spend runs one load run and measures what the serving processes pids
// and the machine spent meanwhile.
func (b *bench) spend(ctx context.Context, pids []string, run func() error) (spent, error) {
	before, err := b.serverUsage(ctx, pids)
	if err != nil {
		return spent{}, err
	}
	idle0, total0, err := idleTicks()
	if err != nil {
		return spent{}, err
	}
	start := time.Now()
	if err := run(); err != nil {
		return spent{}, err
	}
	wall := time.Since(start)
	idle1, total1, err := idleTicks()
	if err != nil {
		return spent{}, err
	}
	after, err := b.serverUsage(ctx, pids)
	if err != nil {
		return spent{}, err
	}
	return spent{
		server: usage{ctxsw: after.ctxsw - before.ctxsw, cpu: after.cpu - before.cpu},
		idle:   float64(idle1-idle0) / float64(max(total1-total0, 1)),
		wall:   wall,
	}, nil
}

// sample turns what a run that served requests cost into the per-request
// and per-machine figures.
func (s spent) sample(served float64) sample {
	return sample{
		ctxsw:  float64(s.server.ctxsw) / max(served, 1),
		srvCPU: s.server.cpu.Seconds() / s.wall.Seconds() / float64(runtime.NumCPU()),
		perReq: float64(s.server.cpu.Microseconds()) / max(served, 1),
		idle:   s.idle,
	}
}

// configure writes variant v into /etc/default/app, scales to n placed
// instances and restarts them, so that each starts afresh with it.
func (b *bench) configure(ctx context.Context, n int, v variant) error {
	body := "APPCTL_PLACEMENT=cpus\n" + strings.Join(append(v.env, ""), "\n")
	if err := b.s.WriteFile("/etc/default/app", []byte(body), 0o644); err != nil {
		return err
	}
	if _, out, err := b.appctl(ctx, "scale", strconv.Itoa(n)); err != nil {
		return fmt.Errorf("scale %d: %w\n%s", n, err, out)
	}
	if _, out, err := b.appctl(ctx, "restart"); err != nil {
		return fmt.Errorf("restart: %w\n%s", err, out)
	}
	return nil
}

// instancePIDs returns the main PIDs of app@1 … app@n.
func (b *bench) instancePIDs(ctx context.Context, n int) ([]string, error) {
	var pids []string
	for i := 1; i <= n; i++ {
		pid, err := b.mainPID(ctx, fmt.Sprintf("app@%d.service", i))
		if err != nil || pid == "" {
			return nil, fmt.Errorf("app@%d is not running: %v", i, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// selfCPU is the CPU time this process has used: the load generator's,
// since nothing else in it runs during a load run.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// each collects one figure of every sample.
func each(s []sample, figure func(sample) float64) []float64 {
	v := make([]float64, len(s))
	for k, x := range s {
		v[k] = figure(x)
	}
	return v
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// Package soak beats on a herd in a systemd sandbox for a while and checks
// that nothing was lost that a fault does not explain.
//
// Constant-rate load (fresh connections, keep-alive connections and long
// requests, all non-idempotent POSTs that nothing retries) runs while
// three lanes of faults, drawn from one seed, run side by side, as they
// would on a real host: the chaos lane kills (kill -9), hangs (SIGSTOP,
// later SIGCONT) and wedges instances; the operator lane reloads, scales,
// reloads systemd and switches a crash loop on and off; the package lane
// upgrades the installed .deb to another good release or to a broken one
// (then back). At the end the faults stop, the herd must settle on the
// count appctl last set, and the report lists every failed request with
// the death that explains it, and every violation: a refused connection,
// a failure no death explains, a death no fault explains, a count that did
// not converge, and anything left behind (processes, socket descriptors,
// drop-ins, cgroups, journal errors).
package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
	"github.com/unitkit/unitkit/tests/sandbox"
)

// Config says what to soak and for how long.
type Config struct {
	// Sandbox is a booted sandbox, its systemd the host the herd runs on.
	Sandbox *sandbox.Sandbox
	// Good are two good releases (.deb files on the host); the first is
	// installed first and upgrades alternate between them. Broken is a
	// release whose instances never become ready.
	Good   [2]string
	Broken string
	// Seed draws every choice; the same seed replays the same schedule.
	Seed uint64
	// Duration is how long faults run, not counting setup and settling.
	Duration time.Duration
	// Logf, if set, is told about every fault as it happens.
	Logf func(format string, args ...any)
}

// Load rates of the three kinds of traffic, requests per second, and the
// long requests' length.
const (
	freshRate   = 120
	keptRate    = 120
	longRate    = 3
	longRequest = 1500 * time.Millisecond
)

// clientTimeout bounds each request: longer than the drain timeout.
const clientTimeout = 45 * time.Second

// Bounds of the commands the soak runs: an operation (apt-get, appctl
// reload or scale) may wait for several drains, each up to DRAIN_TIMEOUT;
// anything else is quick. A command that runs past its bound is killed
// and reported as hung.
const (
	opTimeout  = 4 * time.Minute
	cmdTimeout = 30 * time.Second
)

// Initial is the herd's size when the faults begin.
const Initial = 4

// settleTimeout bounds how long the herd may take to converge once the
// faults stop: a crash loop's back-off, a watchdog period and a restart.
const settleTimeout = 60 * time.Second

// Run sets the herd up in cfg.Sandbox (installs cfg.Good[0], scales to
// Initial), soaks it for cfg.Duration and returns the report. An error
// means the soak could not run at all; what went wrong with the herd is
// in the report's violations.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	s := newSoak(cfg)
	if err := s.setup(ctx); err != nil {
		return nil, fmt.Errorf("soak setup: %w", err)
	}
	loads := s.startLoads()
	s.runLanes(ctx, time.Now().Add(cfg.Duration))
	s.logf("faults stopped; settling")
	settled, err := s.settle(ctx)
	if err != nil {
		return nil, err
	}
	s.logf("settled in %s; calm traffic, then the checks", settled.Round(time.Millisecond))
	time.Sleep(2 * time.Second) // calm traffic after the last fault
	results := map[string]loadtest.Result{}
	for kind, l := range loads {
		results[kind] = l.Stop()
	}
	return s.report(ctx, settled, results)
}

// soak is one run's state, shared by its lanes.
type soak struct {
	cfg  Config
	s    *sandbox.Sandbox
	logf func(string, ...any)

	mu         sync.Mutex
	faults     []Fault
	target     int    // the count of the last appctl scale that succeeded
	crashing   int    // the instance made to crash-loop, 0 if none
	installed  string // the release installed (host path)
	installing string // the release being installed, "" if none
	baseline   baseline
	started    time.Time
	pending    sync.WaitGroup // SIGCONTs still to send
}

func newSoak(cfg Config) *soak {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &soak{cfg: cfg, s: cfg.Sandbox, logf: logf, target: Initial}
}

// lane returns the random source of one lane: each lane draws from its own
// stream of the seed, so one lane's choices do not depend on how fast
// another ran.
func (s *soak) lane(n uint64) *rand.Rand {
	return rand.New(rand.NewPCG(s.cfg.Seed, n))
}

// packagePath is where a release is copied inside the sandbox.
func packagePath(host string) string { return "/tmp/soak/" + filepath.Base(host) }

// runLanes runs the three lanes until deadline and waits for them and for
// every SIGCONT still due.
func (s *soak) runLanes(ctx context.Context, deadline time.Time) {
	var wg sync.WaitGroup
	for n, lane := range []func(context.Context, *rand.Rand, time.Time){s.chaosLane, s.operatorLane, s.packageLane} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lane(ctx, s.lane(uint64(n)), deadline)
		}()
	}
	wg.Wait()
	s.pending.Wait()
}

// sleep waits d or until deadline, and reports whether there is time left.
func sleep(ctx context.Context, d time.Duration, deadline time.Time) bool {
	if until := time.Until(deadline); d > until {
		d = max(until, 0)
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
	}
	return time.Now().Before(deadline) && ctx.Err() == nil
}

// between returns a random duration in [lo, hi).
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

// run runs a command in the sandbox, killed after timeout.
func (s *soak) run(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := s.s.Run(ctx, args...)
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("hung: no end within %s: %w", timeout, err)
		s.logf("%v\n%s", err, s.diagnose(context.WithoutCancel(ctx)))
	}
	return out, err
}

// diagnose describes what the host is doing, for the log of a hung command.
func (s *soak) diagnose(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	out, _ := s.s.Run(ctx, "sh", "-c", "systemctl list-jobs --no-pager; systemctl list-units --no-pager --all 'app*'; ps -eo pid,ppid,stat,etime,args; journalctl --no-pager -n 150")
	return out
}

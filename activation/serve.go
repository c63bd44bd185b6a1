package activation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ErrDrainTimeout is returned by Serve when requests were still in flight
// when the drain timeout ran out and had to be cut off.
var ErrDrainTimeout = errors.New("drain timeout: requests were cut off")

// idleGrace is how long a keep-alive connection must have been idle before
// a draining instance closes it (see connTracker.closeIdle).
const idleGrace = time.Second

// extendMargin is added to the drain timeout in EXTEND_TIMEOUT_USEC= so that
// systemd does not kill an instance that is about to finish.
const extendMargin = 5 * time.Second

// Serve runs h as a systemd instance until ctx is done or a SIGTERM or
// SIGINT arrives, then drains and returns. It is New followed by
// Instance.Serve.
func Serve(ctx context.Context, h http.Handler, opts ...Option) error {
	i, err := New(opts...)
	if err != nil {
		return err
	}
	return i.Serve(ctx, h)
}

// Serve takes the listeners, warms up, reports READY=1 and serves h until
// ctx is done, SIGTERM/SIGINT arrives or the resident memory stays above
// the memory limit; then it drains (see the package documentation) and
// returns nil, ErrMemoryLimit if the memory limit made it stop, or
// ErrDrainTimeout if requests had to be cut off. SIGHUP runs the reload
// hook. Serve may be called once.
func (i *Instance) Serve(ctx context.Context, h http.Handler) error {
	if !i.st.CompareAndSwap(int32(stateStarting), int32(stateWarming)) {
		return errors.New("activation: Serve called twice")
	}
	releaseStart := i.holdStartLock()
	defer releaseStart()
	sigs := make(chan os.Signal, 4)
	if i.cfg.handleSignals {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		defer signal.Stop(sigs)
	}
	lns, err := i.listeners(ctx)
	if err != nil {
		i.setState(stateStopped)
		return err
	}
	if err := i.warmUp(ctx, lns, sigs); err != nil {
		i.setState(stateStopped)
		closeAll(lns)
		return err
	}
	srv := i.newServer(h)
	canaryLn := newCanaryListener()
	go func() { _ = srv.Serve(canaryLn) }()
	lns, gate := i.gateListeners(lns, i.watch.nudge)
	i.watch.start(newCanary(canaryLn, i.cfg.canaryPath), gate)
	serveErr := make(chan error, len(lns))
	served := make(chan struct{}, len(lns))
	for _, ln := range lns {
		go func() {
			serveErr <- srv.Serve(ln)
			served <- struct{}{}
		}()
	}
	i.setLiveness(i.watch.waitFirst(i.healthInterval()))
	i.setReadiness(i.runChecks(i.healthInterval()))
	i.setState(stateReady)
	i.log.Info("ready", "addresses", addrs(lns), "accept", acceptMode(lns), "watchdog", i.watchdog,
		"canary_interval", i.watch.interval, "gated_listeners", gate.gated(),
		"drain_timeout", i.cfg.drainTimeout, "keepalive_requests", i.cfg.keepAlive.requests, "keepalive_time", i.cfg.keepAlive.age,
		"memory_limit", *i.cfg.memoryLimit)
	i.logErr("notify ready", i.notify.Ready(i.statusLine()))
	releaseStart()

	cause := i.run(ctx, sigs, serveErr)
	err = i.drain(srv, lns, canaryLn, served, sigs, cause)
	if cause == causeMemoryLimit {
		i.mem.linger(ctx, sigs)
		return i.mem.stopError(err)
	}
	return err
}

func (i *Instance) listeners(ctx context.Context) ([]net.Listener, error) {
	if len(i.cfg.listeners) > 0 {
		return i.cfg.listeners, nil
	}
	lns, activated, err := Listeners(ctx, i.cfg.listenerName, i.cfg.addr)
	if err != nil {
		i.logErr("notify status", i.notify.Status("failed: "+err.Error()))
		return nil, fmt.Errorf("activation: %w", err)
	}
	i.log.Debug("listeners taken", "socket_activated", activated, "addresses", addrs(lns))
	return lns, nil
}

// warmUp runs the warm-up hook; a stop signal or ctx cancels it.
func (i *Instance) warmUp(ctx context.Context, lns []net.Listener, sigs <-chan os.Signal) error {
	if i.cfg.warmup == nil {
		return nil
	}
	i.logErr("notify status", i.notify.Status("warming up"))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- i.cfg.warmup(wctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				i.logErr("notify status", i.notify.Status("warm-up failed: "+err.Error()))
				return fmt.Errorf("activation: warm-up: %w", err)
			}
			return nil
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				cancel()
				return fmt.Errorf("activation: warm-up interrupted by %s: %w", sig, <-done)
			}
		}
	}
}

func (i *Instance) newServer(h http.Handler) *http.Server {
	srv := &http.Server{
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		ErrorLog:          slog.NewLogLogger(i.log.Handler(), slog.LevelWarn),
	}
	if i.cfg.tuneServer != nil {
		i.cfg.tuneServer(srv)
	}
	srv.Handler = i.wrap(h)
	userState := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		i.conns.hook(c, s)
		if userState != nil {
			userState(c, s)
		}
	}
	userCtx := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if userCtx != nil {
			ctx = userCtx(ctx, c)
		}
		return withConnUse(markCanary(ctx, c), c)
	}
	return srv
}

// healthInterval is how often health is checked: the configured interval,
// or a quarter of the watchdog period if that is shorter, so that a healthy
// instance pings at least twice per period even when a check is slow.
func (i *Instance) healthInterval() time.Duration {
	d := i.cfg.healthInterval
	if i.watchdog > 0 && i.watchdog/4 < d {
		d = i.watchdog / 4
	}
	return d
}

// run serves until a reason to stop arrives and returns that reason.
func (i *Instance) run(ctx context.Context, sigs <-chan os.Signal, serveErr <-chan error) string {
	healthTick := time.NewTicker(i.healthInterval())
	defer healthTick.Stop()
	statusTick := time.NewTicker(i.cfg.statusInterval)
	defer statusTick.Stop()
	var memoryTick <-chan time.Time // nil, never ready, without a limit
	if i.mem != nil {
		t := time.NewTicker(i.mem.hooks.interval)
		defer t.Stop()
		memoryTick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return "context done"
		case <-memoryTick:
			if i.mem.sample() {
				return causeMemoryLimit
			}
		case err := <-serveErr:
			i.log.Error("listener failed", "error", err)
			return "listener failed: " + err.Error()
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				i.reload(ctx)
				continue
			}
			return sig.String()
		case <-healthTick.C:
			i.healthRound()
		case <-statusTick.C:
			i.sendStatus()
		}
	}
}

// healthRound pings the watchdog if the canary answers, and starts a round
// of the named checks, which decide readiness only.
func (i *Instance) healthRound() {
	timeout := i.healthInterval()
	err := i.watch.liveness(timeout)
	i.setLiveness(err)
	if err == nil && i.watchdog > 0 {
		i.logErr("notify watchdog", i.notify.Watchdog())
	}
	i.startChecks(timeout)
}

func (i *Instance) reload(ctx context.Context) {
	i.setState(stateReloading)
	i.logErr("notify reloading", i.notify.Reloading("reloading"))
	var err error
	if i.cfg.reload != nil {
		err = i.cfg.reload(ctx)
	}
	i.setState(stateReady)
	status := i.statusLine()
	if err != nil {
		i.log.Error("reload failed; serving with the previous configuration", "error", err)
		status = "reload failed: " + err.Error() + "; " + status
	} else {
		i.log.Info("reloaded")
	}
	i.logErr("notify ready", i.notify.Ready(status))
}

// statusLine is the STATUS= text shown by systemctl status.
func (i *Instance) statusLine() string {
	s := i.Stats()
	line := fmt.Sprintf("%s: %d requests served, %d in flight", s.State, s.Served, s.InFlight)
	if i.watch.stuckFor() > 0 {
		line += "; " + i.pauseNote()
	}
	if ok, _, failure := i.live.get(); !ok && failure != "" {
		line += "; unhealthy: " + failure
	}
	if ok, _, failure := i.ready.get(); !ok && failure != "" {
		line += "; not ready: " + failure
	}
	if note := i.mem.statusNote(); note != "" {
		line += "; " + note
	}
	return line
}

// sendStatus sends the current STATUS= line.
func (i *Instance) sendStatus() {
	i.logErr("notify status", i.notify.Status(i.statusLine()))
}

func (i *Instance) logErr(what string, err error) {
	if err != nil {
		i.log.Warn(what, "error", err)
	}
}

func addrs(lns []net.Listener) []string {
	out := make([]string, len(lns))
	for k, ln := range lns {
		out[k] = ln.Addr().String()
	}
	return out
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// acceptMode names how lns accept: AcceptExclusive when every one of them
// is an exclusiveListener (gated or not), AcceptShared otherwise.
func acceptMode(lns []net.Listener) string {
	for _, ln := range lns {
		if _, ok := ungated(ln).(*exclusiveListener); !ok {
			return AcceptShared
		}
	}
	return AcceptExclusive
}

// Command app is the reference worker: the binary the packages ship and the
// example users copy. It is a small HTTP service built only on
// github.com/unitkit/unitkit/activation, run as one of many instances
// (app@1.service … app@N.service) sharing the socket systemd holds.
//
// It answers:
//
//	GET /            "hello from instance N"
//	GET /version     the version the binary was built as
//	GET /work?ms=N   burns CPU for N milliseconds (0 to 10000)
//	GET /sleep?ms=N  holds the request for N milliseconds (0 to 60000)
//	GET /metrics     Prometheus metrics of this instance
//
// and sets X-Instance and X-Version on every response. Everything else an
// instance needs — listeners, READY=1, the watchdog, /healthz, /readyz,
// signals, draining, logging — comes from the activation package and is
// configured through its environment variables ($PORT, $LISTEN_ADDR,
// $INSTANCE, $DRAIN_TIMEOUT, $MEMORY_LIMIT, $LOG_LEVEL, $LOG_FORMAT).
//
// # Metrics of each instance
//
// Every instance serves the one shared socket, so a scrape of /metrics
// there reaches whichever instance accepts it. To scrape each instance,
// set $METRICS_PORT_BASE: instance N (its $INSTANCE, which must then be a
// positive whole number, as in app@N.service) also serves GET /metrics,
// and nothing else, on port METRICS_PORT_BASE+N of $METRICS_HOST (default:
// all addresses), until it exits. With METRICS_PORT_BASE=18000, app@3
// answers on port 18003. Unset or empty, there is no such listener. A base
// that is not a whole number, a port above 65535, an INSTANCE that is not
// a number, or a port that cannot be bound (ports below 1024 need a
// privilege the unit does not grant) fails the start with a message
// saying so. contrib/prometheus has the matching scrape configuration.
//
// $MEMORY_LIMIT (default: MemoryHigh= of the unit) makes an instance whose
// resident memory stays above it drain and exit 75, one instance at a
// time, so that systemd replaces it before MemoryMax= kills it.
//
// $APP_FAULT makes the app misbehave on purpose, for tests and
// demonstrations: "fail-start" fails the warm-up (the instance never becomes
// ready), "wedge" enables POST /debug/wedge, which blocks the serving path of
// the instance that receives it until the watchdog replaces it, "grow"
// enables POST /debug/grow?mb=N (N from 1 to 4096), which makes the
// instance that receives it keep N MiB more resident, as a leak would.
//
// The only flag is -version, which prints the version and exits. Set the
// version at build time with
//
//	go build -ldflags "-X main.version=1.2.3" ./cmd/app
//
// Exit status: 0 after a clean drain or -version, 1 when the environment is
// misconfigured or serving fails, 2 for a bad command line, 75
// (activation.ExitMemoryLimit) after the instance stopped because of the
// memory limit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/unitkit/unitkit/activation"
)

// version is the version the binary reports; release builds set it with
// -ldflags "-X main.version=...".
var version = "dev"

// usageError is a bad command line; the flag package, or parseFlags, has
// already printed why along with the usage.
type usageError struct{ err error }

// Error returns the underlying flag error's text.
func (e usageError) Error() string { return e.err.Error() }

// Unwrap returns the underlying flag error.
func (e usageError) Unwrap() error { return e.err }

// main runs the app and turns run's error into an exit status.
func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		os.Exit(exitCode(err))
	}
}

// exitCode maps an error returned by run to the process exit status: 0 for
// nil or a request for help, 2 for a bad command line, 75 after a stop for
// the memory limit (even if its drain was cut short: the unit and appctl
// must still see a planned restart, not a crash), 1 otherwise.
func exitCode(err error) int {
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		return 2
	case errors.Is(err, activation.ErrMemoryLimit):
		return activation.ExitMemoryLimit
	default:
		return 1
	}
}

// run parses args and serves until the instance has drained. It reports
// every error it returns itself — flag errors with the usage on stderr,
// configuration errors on stderr, serve errors through the instance's
// logger — so the caller only has to pick an exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	showVersion, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if showVersion {
		if _, err := fmt.Fprintln(stdout, version); err != nil {
			return fmt.Errorf("print version: %w", err)
		}
		return nil
	}
	return serve(ctx, stderr)
}

// parseFlags parses the command line and reports whether -version was
// given. Errors are usageErrors, except flag.ErrHelp for -h and -help.
func parseFlags(args []string, stderr io.Writer) (showVersion bool, err error) {
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: app [-version]\n\nThe reference unitkit worker; configure it with environment variables.\n\n")
		fs.PrintDefaults()
	}
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, err
		}
		return false, usageError{fmt.Errorf("parse flags: %w", err)}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "app: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return false, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return showVersion, nil
}

// serve creates the instance from the environment and serves the app's
// routes on it until the instance is told to stop and has drained; with
// $METRICS_PORT_BASE set it also serves /metrics on a port of its own
// until then.
func serve(ctx context.Context, stderr io.Writer) error {
	f, mcfg, err := configure(os.LookupEnv)
	if err != nil {
		fmt.Fprintf(stderr, "app: %v\n", err)
		return fmt.Errorf("configure instance: %w", err)
	}
	var opts []activation.Option
	if f == faultFailStart {
		opts = append(opts, activation.WithWarmup(failStart))
	}
	inst, err := activation.New(opts...)
	if err != nil {
		fmt.Fprintf(stderr, "app: %v\n", err)
		return fmt.Errorf("configure instance: %w", err)
	}
	log := inst.Logger()
	m, err := newMetrics(inst)
	if err != nil {
		log.Error("metrics setup failed", "error", err)
		return fmt.Errorf("set up metrics: %w", err)
	}
	stopMetrics, err := startMetrics(mcfg, inst, m)
	if err != nil {
		log.Error("metrics listener failed", "error", err)
		return err
	}
	defer stopMetrics()
	log.Info("starting", "version", version)
	h := newMux(inst, m)
	if f == faultWedge {
		log.Warn("APP_FAULT=wedge: POST /debug/wedge will wedge this instance")
		h = wedgeable(inst.Name(), h)
	}
	if f == faultGrow {
		log.Warn("APP_FAULT=grow: POST /debug/grow?mb=N will grow this instance")
		h = growable(inst.Name(), h)
	}
	if err := inst.Serve(ctx, h); err != nil {
		log.Log(ctx, serveErrorLevel(err), "serve failed", "error", err)
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// serveErrorLevel is how loudly to log an error of Serve: a stop for the
// memory limit is expected, and only informative, unless its drain had to
// cut requests off.
func serveErrorLevel(err error) slog.Level {
	if errors.Is(err, activation.ErrMemoryLimit) && !errors.Is(err, activation.ErrDrainTimeout) {
		return slog.LevelInfo
	}
	return slog.LevelError
}

// configure reads the app's own settings from env: $APP_FAULT and the
// per-instance metrics listener.
func configure(env func(string) (string, bool)) (fault, metricsConfig, error) {
	v, _ := env("APP_FAULT")
	f, err := parseFault(v)
	if err != nil {
		return "", metricsConfig{}, err
	}
	mcfg, err := parseMetricsConfig(env)
	if err != nil {
		return "", metricsConfig{}, err
	}
	return f, mcfg, nil
}

// startMetrics starts the per-instance metrics listener when cfg asks for
// one, and returns the function that closes it.
func startMetrics(cfg metricsConfig, inst *activation.Instance, m *metrics) (stop func(), err error) {
	if !cfg.on() {
		return func() {}, nil
	}
	ms, err := listenMetrics(cfg, inst, m)
	if err != nil {
		return nil, fmt.Errorf("serve metrics: %w", err)
	}
	log := inst.Logger()
	log.Info("serving metrics", "address", ms.Addr().String())
	return func() {
		if err := ms.Close(); err != nil {
			log.Warn("closing the metrics listener", "error", err)
		}
	}, nil
}

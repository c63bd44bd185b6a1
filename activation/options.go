package activation

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Default timings. Each can be changed with an Option.
const (
	// DefaultDrainTimeout bounds how long a stopping instance waits for
	// in-flight requests; $DRAIN_TIMEOUT overrides it.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultStatusInterval is how often the STATUS= text is refreshed.
	DefaultStatusInterval = 5 * time.Second
	// DefaultHealthInterval is how often health is checked when systemd's
	// watchdog does not ask for a shorter period.
	DefaultHealthInterval = 5 * time.Second
	// DefaultReadHeaderTimeout guards against clients that open a
	// connection and send headers slowly or never.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes keep-alive connections idle this long.
	DefaultIdleTimeout = 60 * time.Second
)

// Option configures an Instance.
type Option func(*config) error

// HealthCheck reports whether a dependency the instance needs is usable.
// It must return within ctx's deadline.
type HealthCheck func(ctx context.Context) error

type namedCheck struct {
	name  string
	check HealthCheck
}

type config struct {
	listenerName   string
	addr           string
	listeners      []net.Listener
	warmup         func(context.Context) error
	reload         func(context.Context) error
	checks         []namedCheck
	canaryPath     string
	canaryInterval *time.Duration // nil: $CANARY_INTERVAL, else DefaultCanaryInterval
	canaryStuck    time.Duration
	healthPath     string
	readyPath      string
	drainTimeout   time.Duration
	statusInterval time.Duration
	healthInterval time.Duration
	logger         *slog.Logger
	notifier       *Notifier
	tuneServer     func(*http.Server)
	handleSignals  bool
	keepAlive      *keepAliveLimits // nil: from the environment
	memoryLimit    *uint64          // nil: $MEMORY_LIMIT, else the cgroup's memory.high
	memory         memoryHooks
}

func defaultConfig() config {
	return config{
		canaryPath:     "/healthz",
		canaryStuck:    defaultCanaryStuck,
		healthPath:     "/healthz",
		readyPath:      "/readyz",
		statusInterval: DefaultStatusInterval,
		healthInterval: DefaultHealthInterval,
		handleSignals:  true,
		memory:         defaultMemoryHooks(),
	}
}

// WithListenerName selects, under socket activation, the passed sockets
// named name (FileDescriptorName= of the socket unit). Without it the
// instance serves the passed sockets when they all share one name.
func WithListenerName(name string) Option {
	return func(c *config) error {
		if name == "" {
			return fmt.Errorf("listener name must not be empty")
		}
		c.listenerName = name
		return nil
	}
}

// WithAddr sets the host:port to listen on when not socket-activated,
// taking precedence over $LISTEN_ADDR and $PORT.
func WithAddr(addr string) Option {
	return func(c *config) error {
		if err := validateAddr(addr); err != nil {
			return fmt.Errorf("address %q: %w", addr, err)
		}
		c.addr = addr
		return nil
	}
}

// WithListeners serves the given listeners instead of taking them from
// systemd or opening one. The Instance closes them when it stops.
func WithListeners(lns ...net.Listener) Option {
	return func(c *config) error {
		if len(lns) == 0 {
			return fmt.Errorf("WithListeners needs at least one listener")
		}
		c.listeners = lns
		return nil
	}
}

// WithWarmup runs fn before the instance accepts connections and reports
// READY=1. If fn fails, Serve returns its error and the start fails.
func WithWarmup(fn func(context.Context) error) Option {
	return func(c *config) error { c.warmup = fn; return nil }
}

// WithReload runs fn on SIGHUP (systemctl reload), between RELOADING=1 and
// READY=1. A failing fn is logged and shown in STATUS=; the instance keeps
// serving with what it had.
func WithReload(fn func(context.Context) error) Option {
	return func(c *config) error { c.reload = fn; return nil }
}

// WithHealthCheck adds a named check of a dependency to the instance's
// readiness. Checks run in the background every health interval; while one
// fails, the readiness endpoint answers 503 and STATUS= says why. A failing
// check affects readiness only: the instance keeps accepting, its liveness
// endpoint keeps answering 200 and the watchdog keeps being pinged, both
// of which follow the canary alone, so that a dependency every instance
// shares cannot make systemd kill them all or stop them all accepting.
func WithHealthCheck(name string, check HealthCheck) Option {
	return func(c *config) error {
		if name == "" || check == nil {
			return fmt.Errorf("health check needs a name and a function")
		}
		c.checks = append(c.checks, namedCheck{name, check})
		return nil
	}
}

// WithCanaryPath sets the path of the canary request that proves that
// the handler still answers (default "/healthz"); see WithCanaryInterval
// for when it is sent.
// The canary passes through the whole handler given to Serve; any answer
// below 500 counts as alive. Keep the path cheap and free of calls to
// dependencies (WithHealthCheck is for those): a canary without an answer
// for 100ms while no other request completes stops the instance accepting
// until it answers, and one without an answer for a health interval stops
// the watchdog pings.
func WithCanaryPath(path string) Option {
	return func(c *config) error {
		if len(path) == 0 || path[0] != '/' {
			return fmt.Errorf("canary path %q must start with /", path)
		}
		c.canaryPath = path
		return nil
	}
}

// WithCanaryInterval sets how long an instance that accepts connections
// may go without a completed request or an answered canary before it
// sends a canary, which bounds how soon a wedged handler stops it
// accepting; it overrides $CANARY_INTERVAL and DefaultCanaryInterval. The
// canary also goes out every health interval, and 0 sends it then only.
func WithCanaryInterval(d time.Duration) Option {
	return func(c *config) error {
		if err := validCanaryInterval(d); err != nil {
			return fmt.Errorf("canary interval %s: %w", d, err)
		}
		c.canaryInterval = &d
		return nil
	}
}

// WithHealthPaths sets where the instance answers liveness (default
// "/healthz") and readiness (default "/readyz") probes itself, before the
// handler. An empty path turns that endpoint off; mount Instance.Healthz or
// Instance.Readyz yourself then.
func WithHealthPaths(health, ready string) Option {
	return func(c *config) error {
		for _, p := range []string{health, ready} {
			if p != "" && p[0] != '/' {
				return fmt.Errorf("health path %q must start with /", p)
			}
		}
		c.healthPath, c.readyPath = health, ready
		return nil
	}
}

// WithDrainTimeout bounds how long a stopping instance waits for in-flight
// requests, overriding $DRAIN_TIMEOUT and DefaultDrainTimeout.
func WithDrainTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 || d > maxDrainTimeout {
			return fmt.Errorf("drain timeout %s: want more than 0 and at most %s", d, maxDrainTimeout)
		}
		c.drainTimeout = d
		return nil
	}
}

// WithStatusInterval sets how often the STATUS= text is refreshed.
func WithStatusInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 100*time.Millisecond {
			return fmt.Errorf("status interval %s: want at least 100ms", d)
		}
		c.statusInterval = d
		return nil
	}
}

// WithHealthInterval sets how often health is checked; a shorter period
// asked for by systemd's watchdog wins.
func WithHealthInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 10*time.Millisecond {
			return fmt.Errorf("health interval %s: want at least 10ms", d)
		}
		c.healthInterval = d
		return nil
	}
}

// WithLogger sets the logger; the default comes from NewLogger.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithNotifier sets where sd_notify messages go; the default is
// NewNotifier.
func WithNotifier(n *Notifier) Option {
	return func(c *config) error { c.notifier = n; return nil }
}

// WithServer lets fn adjust the http.Server before it serves, e.g. its
// timeouts. fn must not replace Handler, ConnState or ConnContext.
func WithServer(fn func(*http.Server)) Option {
	return func(c *config) error { c.tuneServer = fn; return nil }
}

// WithKeepAliveLimits bounds what one client connection may carry: after
// requests requests, or once it is older than age, the response carries
// "Connection: close" and the client reconnects, possibly to another
// instance. Zero turns a bound off. It overrides $KEEPALIVE_REQUESTS,
// $KEEPALIVE_TIME, DefaultKeepAliveRequests and DefaultKeepAliveTime.
func WithKeepAliveLimits(requests int, age time.Duration) Option {
	return func(c *config) error {
		if requests < 0 || requests > maxKeepAliveRequests || age < 0 || age > maxKeepAliveTime {
			return fmt.Errorf("keep-alive limits %d requests, %s: want 0 to %d requests and 0 to %s", requests, age, maxKeepAliveRequests, maxKeepAliveTime)
		}
		c.keepAlive = &keepAliveLimits{requests: int64(requests), age: age}
		return nil
	}
}

// WithoutSignals stops the instance from handling SIGTERM, SIGINT and
// SIGHUP; it then drains only when the context given to Serve is done.
func WithoutSignals() Option {
	return func(c *config) error { c.handleSignals = false; return nil }
}

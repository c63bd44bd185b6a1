package activation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// state is where an instance is in its life.
type state int32

const (
	stateStarting state = iota
	stateWarming
	stateReady
	stateReloading
	stateDraining
	stateStopped
)

func (s state) String() string {
	switch s {
	case stateStarting:
		return "starting"
	case stateWarming:
		return "warming up"
	case stateReady:
		return "ready"
	case stateReloading:
		return "reloading"
	case stateDraining:
		return "draining"
	default:
		return "stopped"
	}
}

// Instance is one worker process of a service: it serves an http.Handler on
// the listeners systemd passed and tells systemd how it is doing. Create it
// with New, mount its probes if you moved them, then call Serve once.
type Instance struct {
	cfg      config
	name     string
	log      *slog.Logger
	notify   *Notifier
	watchdog time.Duration
	started  time.Time

	st       atomic.Int32
	served   atomic.Uint64
	inFlight atomic.Int64

	live     healthState // the canary: liveness and the watchdog
	ready    healthState // the named checks: readiness
	checking atomic.Bool // a round of named checks is running
	watch    *canaryWatch
	conns    *connTracker
	mem      *memoryWatch // nil: no memory limit
}

// New validates opts and the environment and returns an Instance ready to
// Serve. Errors name the option or variable at fault.
func New(opts ...Option) (*Instance, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("activation: %w", err)
		}
	}
	if cfg.drainTimeout == 0 {
		d, err := parseDrainTimeout(osEnv, DefaultDrainTimeout)
		if err != nil {
			return nil, fmt.Errorf("activation: %w", err)
		}
		cfg.drainTimeout = d
	}
	if cfg.keepAlive == nil {
		k, err := parseKeepAlive(osEnv, keepAliveLimits{requests: DefaultKeepAliveRequests, age: DefaultKeepAliveTime})
		if err != nil {
			return nil, fmt.Errorf("activation: %w", err)
		}
		cfg.keepAlive = &k
	}
	if cfg.canaryInterval == nil {
		d, err := parseCanaryInterval(osEnv, DefaultCanaryInterval)
		if err != nil {
			return nil, fmt.Errorf("activation: %w", err)
		}
		cfg.canaryInterval = &d
	}
	if cfg.memoryLimit == nil {
		limit, err := memoryLimit(osEnv, procSelfCgroup, cgroupRoot)
		if err != nil {
			return nil, fmt.Errorf("activation: %w", err)
		}
		cfg.memoryLimit = &limit
	}
	if _, err := parseAcceptMode(osEnv); err != nil { // read again by Listeners
		return nil, fmt.Errorf("activation: %w", err)
	}
	wd, err := parseWatchdog(osEnv, os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("activation: %w", err)
	}
	name, err := instanceName(osEnv, os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("activation: %w", err)
	}
	if cfg.logger == nil {
		if cfg.logger, err = NewLogger(); err != nil {
			return nil, fmt.Errorf("activation: %w", err)
		}
	}
	if cfg.notifier == nil {
		cfg.notifier = NewNotifier()
	}
	i := &Instance{
		cfg:      cfg,
		name:     name,
		log:      cfg.logger.With("instance", name),
		notify:   cfg.notifier,
		watchdog: wd,
		conns:    newConnTracker(),
		started:  time.Now(),
	}
	i.watch = newCanaryWatch(cfg.canaryPath, *cfg.canaryInterval, i.healthInterval(), cfg.canaryStuck, i.served.Load, i.log, i.sendStatus)
	if limit := *cfg.memoryLimit; limit > 0 {
		i.mem = newMemoryWatch(limit, cfg.memory, i.log)
	}
	return i, nil
}

// Name is the instance's name: $INSTANCE (the unit sets it to %i, e.g.
// "3"), or hostname-pid outside systemd.
func (i *Instance) Name() string { return i.name }

// Logger returns the instance's logger, which carries its name.
func (i *Instance) Logger() *slog.Logger { return i.log }

// Notifier returns the instance's sd_notify sender.
func (i *Instance) Notifier() *Notifier { return i.notify }

// Stats is a snapshot of an instance's counters.
type Stats struct {
	State    string    // starting, warming up, ready, reloading, draining, stopped
	Served   uint64    // requests answered since start (canary excluded)
	InFlight int64     // requests being served now
	Started  time.Time // when the instance was created
}

// Stats returns the instance's current counters.
func (i *Instance) Stats() Stats {
	return Stats{
		State:    i.state().String(),
		Served:   i.served.Load(),
		InFlight: i.inFlight.Load(),
		Started:  i.started,
	}
}

func (i *Instance) state() state     { return state(i.st.Load()) }
func (i *Instance) setState(s state) { i.st.Store(int32(s)) }

// instanceName reads $INSTANCE, or builds hostname-pid when it is unset.
func instanceName(env lookupFunc, pid int) (string, error) {
	if v, ok := env("INSTANCE"); ok && v != "" {
		if len(v) > 64 {
			return "", fmt.Errorf("INSTANCE=%q is longer than 64 characters", v)
		}
		for _, r := range v {
			if r == utf8.RuneError || !unicode.IsPrint(r) || unicode.IsSpace(r) {
				return "", fmt.Errorf("INSTANCE=%q: want printable UTF-8 characters without spaces", v)
			}
		}
		return v, nil
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return host + "-" + strconv.Itoa(pid), nil
}

type requestIDKey struct{}

// RequestID returns the ID of the request ctx belongs to: the client's
// X-Request-Id when it sent a sane one, otherwise one made up on arrival.
// It is also sent back in the X-Request-Id response header.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// wrap puts the instance's bookkeeping around h: probes, counters, request
// IDs, and "Connection: close" on every response once draining began.
func (i *Instance) wrap(h http.Handler) http.Handler {
	healthz, readyz := i.Healthz(), i.Readyz()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsCanary(r.Context()) {
			h.ServeHTTP(w, r)
			return
		}
		if p := i.cfg.healthPath; p != "" && r.URL.Path == p {
			healthz.ServeHTTP(w, r)
			return
		}
		if p := i.cfg.readyPath; p != "" && r.URL.Path == p {
			readyz.ServeHTTP(w, r)
			return
		}
		i.inFlight.Add(1)
		defer func() {
			i.inFlight.Add(-1)
			i.served.Add(1)
		}()
		if i.state() == stateDraining {
			// Our listener is closed; let this connection end with this
			// response so the client's next request reaches another
			// instance instead of racing our exit.
			w.Header().Set("Connection", "close")
		} else if i.cfg.keepAlive.last(r) {
			w.Header().Set("Connection", "close") // reconnect: spread over the instances
		}
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	return hex.EncodeToString(b[:])
}

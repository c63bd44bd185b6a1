package activation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// healthState is the result of the last look at one side of the
// instance's health: liveness (the canary) or readiness (the named checks).
type healthState struct {
	mu      sync.Mutex
	ok      bool
	checked time.Time
	failure string
}

// set stores err and reports whether it turned the state from passing to
// failing or back. The first result counts as a change only if it fails.
func (h *healthState) set(err error) (changed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	first := h.checked.IsZero()
	changed = (err == nil) != h.ok && !(first && err == nil)
	h.ok, h.checked, h.failure = err == nil, time.Now(), ""
	if err != nil {
		h.failure = err.Error()
	}
	return changed
}

func (h *healthState) get() (ok bool, checked time.Time, failure string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok, h.checked, h.failure
}

// runChecks runs every named check in turn, each bounded by timeout, and
// returns the first failure.
func (i *Instance) runChecks(timeout time.Duration) error {
	for _, c := range i.cfg.checks {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := c.check(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("check %s: %w", c.name, err)
		}
	}
	return nil
}

// startChecks runs the named checks in the background, unless the previous
// round is still running, so that a slow dependency never delays the
// watchdog.
func (i *Instance) startChecks(timeout time.Duration) {
	if len(i.cfg.checks) == 0 || !i.checking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer i.checking.Store(false)
		i.setReadiness(i.runChecks(timeout))
	}()
}

// setLiveness stores what the canary says and logs a change.
func (i *Instance) setLiveness(err error) {
	if !i.live.set(err) {
		return
	}
	if err != nil {
		i.log.Error("canary failing; not pinging the watchdog", "error", err)
	} else {
		i.log.Info("canary answering again; pinging the watchdog")
	}
	i.sendStatus()
}

// setReadiness stores what the named checks say and logs a change. A
// failing check makes the instance unready, nothing more: it keeps
// accepting and pinging the watchdog, so that a dependency every instance
// shares cannot stop them all.
func (i *Instance) setReadiness(err error) {
	if !i.ready.set(err) {
		return
	}
	if err != nil {
		i.log.Warn("health check failing; readiness answers 503, still serving", "error", err)
	} else {
		i.log.Info("health check passing again")
	}
	i.sendStatus()
}

// readiness says whether the instance is ready for traffic: in a serving
// state, accepting, its canary answering and every named check passing.
// checked is when the checks last ran.
func (i *Instance) readiness() (ok bool, checked time.Time, failure string) {
	ok, checked, failure = i.ready.get()
	live, _, liveFailure := i.live.get()
	switch s := i.state(); {
	case s != stateReady && s != stateReloading:
		return false, checked, "instance is " + s.String()
	case i.watch.stuckFor() > 0:
		return false, checked, i.pauseNote()
	case !live:
		return false, checked, liveFailure
	}
	return ok, checked, failure
}

// pauseNote says, while the instance does not accept, why.
func (i *Instance) pauseNote() string {
	return fmt.Sprintf("not accepting new connections: canary stuck for %s", i.watch.stuckFor().Round(time.Millisecond))
}

// probeReport is the JSON body of the health and readiness endpoints.
type probeReport struct {
	Status   string `json:"status"`
	State    string `json:"state"`
	Instance string `json:"instance"`
	Checked  string `json:"checked,omitempty"`
	Failure  string `json:"failure,omitempty"`
}

// Healthz returns a liveness handler: 200 while the canary request
// through the handler answers, 503 otherwise. Named checks do not count
// (see Readyz). It answers from the stored result, so probes cost nothing
// and cannot pile up. The canary itself always gets 200 from it: reaching
// it proves the serving path works.
func (i *Instance) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsCanary(r.Context()) {
			i.writeProbe(w, true, time.Time{}, "")
			return
		}
		ok, checked, failure := i.live.get()
		i.writeProbe(w, ok, checked, failure)
	})
}

// Readyz returns a readiness handler: 200 while the instance is ready for
// traffic (warmed up, not draining, accepting, its canary answering and
// every WithHealthCheck check passing), 503 otherwise, saying why. Load
// balancers use it to stop sending to an instance before it goes away or
// while a dependency fails.
func (i *Instance) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ok, checked, failure := i.readiness()
		i.writeProbe(w, ok, checked, failure)
	})
}

func (i *Instance) writeProbe(w http.ResponseWriter, ok bool, checked time.Time, failure string) {
	rep := probeReport{Status: "ok", State: i.state().String(), Instance: i.name, Failure: failure}
	if !checked.IsZero() {
		rep.Checked = checked.UTC().Format(time.RFC3339Nano)
	}
	code := http.StatusOK
	if !ok {
		rep.Status, code = "fail", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(rep)
}

package activation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// healthState is the result of the last health round: the canary and every
// named check.
type healthState struct {
	mu      sync.Mutex
	ok      bool
	checked time.Time
	failure string
}

func (h *healthState) set(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ok, h.checked, h.failure = err == nil, time.Now(), ""
	if err != nil {
		h.failure = err.Error()
	}
}

func (h *healthState) get() (ok bool, checked time.Time, failure string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok, h.checked, h.failure
}

// checkHealth runs the canary and then every named check, each bounded by
// timeout, and returns the first failure.
func (i *Instance) checkHealth(timeout time.Duration) error {
	if err := i.canary.probe(timeout); err != nil {
		return err
	}
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

// probeReport is the JSON body of the health and readiness endpoints.
type probeReport struct {
	Status   string `json:"status"`
	State    string `json:"state"`
	Instance string `json:"instance"`
	Checked  string `json:"checked,omitempty"`
	Failure  string `json:"failure,omitempty"`
}

// Healthz returns a liveness handler: 200 while the last health round
// (canary request plus checks) passed, 503 otherwise. It answers from the
// stored result, so probes cost nothing and cannot pile up. The canary
// itself always gets 200 from it: reaching it proves the serving path works.
func (i *Instance) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsCanary(r.Context()) {
			i.writeProbe(w, true, time.Time{}, "")
			return
		}
		ok, checked, failure := i.health.get()
		i.writeProbe(w, ok, checked, failure)
	})
}

// Readyz returns a readiness handler: 200 while the instance is ready for
// traffic (warmed up, healthy, not draining), 503 otherwise. Load balancers
// use it to stop sending to an instance before it goes away.
func (i *Instance) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ok, checked, failure := i.health.get()
		if s := i.state(); s != stateReady && s != stateReloading {
			ok, failure = false, "instance is "+s.String()
		}
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

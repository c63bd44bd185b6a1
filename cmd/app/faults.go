package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
)

// fault is a failure the app can be told to simulate through $APP_FAULT,
// so that the integration tests (and curious operators) can watch systemd
// and the activation library deal with it. The default is none.
type fault string

const (
	faultNone fault = ""
	// faultFailStart makes the warm-up fail: the instance exits 1 without
	// becoming ready, as a broken release would.
	faultFailStart fault = "fail-start"
	// faultWedge enables POST /debug/wedge, which blocks the whole serving
	// path of the instance that receives it, as a deadlock would; the
	// watchdog then replaces the instance.
	faultWedge fault = "wedge"
)

// parseFault validates $APP_FAULT.
func parseFault(v string) (fault, error) {
	switch f := fault(v); f {
	case faultNone, faultFailStart, faultWedge:
		return f, nil
	}
	return "", fmt.Errorf("APP_FAULT=%q: want fail-start, wedge or nothing", v)
}

// failStart is the warm-up hook of faultFailStart.
func failStart(context.Context) error {
	return errors.New("APP_FAULT=fail-start: failing the warm-up on purpose")
}

// wedgeable wraps h so that POST /debug/wedge stops every later request
// from getting through: it takes, and never releases, the lock each request
// holds while it is served. The answer names the instance it wedged.
func wedgeable(instance string, h http.Handler) http.Handler {
	var mu sync.RWMutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/debug/wedge" && r.Method == http.MethodPost {
			mu.Lock() // never unlocked: the instance is wedged for good
			w.Header().Set("X-Instance", instance)
			writeText(w, "wedged instance "+instance+"\n")
			return
		}
		mu.RLock()
		defer mu.RUnlock()
		h.ServeHTTP(w, r)
	})
}

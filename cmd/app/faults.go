package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/prometheus/procfs"
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
	// instance stops accepting new connections once its canary is stuck,
	// and the watchdog then replaces it.
	faultWedge fault = "wedge"
	// faultGrow enables POST /debug/grow?mb=N, which makes the instance
	// that receives it keep N MiB more resident, as a leak would; with a
	// memory limit the instance then drains and is replaced.
	faultGrow fault = "grow"
)

// maxGrowMB is the most one POST /debug/grow adds, in MiB.
const maxGrowMB = 4096

// touchStride is how far apart grow writes a byte: every 4 KiB page, the
// smallest page size, becomes resident.
const touchStride = 4096

// parseFault validates $APP_FAULT.
func parseFault(v string) (fault, error) {
	switch f := fault(v); f {
	case faultNone, faultFailStart, faultWedge, faultGrow:
		return f, nil
	}
	return "", fmt.Errorf("APP_FAULT=%q: want fail-start, wedge, grow or nothing", v)
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

// growable wraps h so that POST /debug/grow?mb=N makes the instance grow
// by N MiB for the rest of its life. The answer names the instance and
// its resident memory afterwards.
func growable(instance string, h http.Handler) http.Handler {
	var g grower
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/grow" {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("X-Instance", instance)
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, fmt.Sprintf("method %s not allowed; use POST", r.Method), http.StatusMethodNotAllowed)
			return
		}
		mb, err := parseGrowMB(r.URL.RawQuery)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g.grow(mb)
		rss, err := residentMemory()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeText(w, fmt.Sprintf("instance %s grew by %d MiB, rss now %d MiB\n", instance, mb, rss>>20))
	})
}

// parseGrowMB reads the single mb parameter of query: a whole number of
// MiB from 1 to maxGrowMB, digits only.
func parseGrowMB(query string) (int, error) {
	want := fmt.Sprintf("want ?mb=N with N a whole number of MiB from 1 to %d", maxGrowMB)
	values, err := url.ParseQuery(query)
	if err != nil {
		return 0, fmt.Errorf("malformed query string: %s", want)
	}
	vs := values["mb"]
	if len(vs) == 0 {
		return 0, fmt.Errorf("missing query parameter mb: %s", want)
	}
	if len(vs) > 1 {
		return 0, fmt.Errorf("query parameter mb given %d times: %s", len(vs), want)
	}
	n, err := strconv.Atoi(vs[0])
	if !isDigits(vs[0]) || err != nil || n < 1 || n > maxGrowMB {
		return 0, fmt.Errorf("mb=%s: %s", quote(vs[0]), want)
	}
	return n, nil
}

// grower keeps what grow allocated referenced, so that it stays resident
// until the process exits.
type grower struct {
	mu   sync.Mutex
	kept [][]byte
}

// grow allocates mb MiB and writes to every page of it: the kernel backs
// untouched pages with nothing, and they would not count as resident.
func (g *grower) grow(mb int) {
	b := make([]byte, mb<<20)
	for k := 0; k < len(b); k += touchStride {
		b[k] = 1
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.kept = append(g.kept, b)
}

// residentMemory returns the process's resident memory in bytes.
func residentMemory() (int, error) {
	p, err := procfs.Self()
	if err != nil {
		return 0, fmt.Errorf("read resident memory: %w", err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("read resident memory: %w", err)
	}
	return st.ResidentMemory(), nil
}

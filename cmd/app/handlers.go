package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/unitkit/unitkit/activation"
)

// Bounds of the ms query parameter, in milliseconds. They keep a single
// request from occupying an instance for long: a /sleep longer than the
// drain timeout would be cut off when the instance stops anyway.
const (
	// maxSleepMillis is the longest /sleep?ms= accepted: one minute.
	maxSleepMillis = 60000
	// maxWorkMillis is the longest /work?ms= accepted: ten seconds of CPU.
	maxWorkMillis = 10000
)

// otherRoute labels, in metrics, every request that matched no route, so
// that unknown paths cannot grow the label set.
const otherRoute = "other"

// newMux returns the app's handler: its routes, each counted in m under its
// own path, and X-Instance and X-Version set on every response. The
// instance answers /healthz and /readyz before this handler is reached.
func newMux(inst *activation.Instance, m *metrics) http.Handler {
	mux := http.NewServeMux()
	read := []string{http.MethodGet, http.MethodHead}
	write := []string{http.MethodGet, http.MethodHead, http.MethodPost}
	route := func(pattern, label string, h http.Handler, methods []string) {
		mux.Handle(pattern, m.instrument(label, allowMethods(methods, h)))
	}
	route("/{$}", "/", hello(inst.Name()), write)
	route("/version", "/version", http.HandlerFunc(versionHandler), read)
	route("/work", "/work", http.HandlerFunc(work), write)
	route("/sleep", "/sleep", http.HandlerFunc(sleep), write)
	route("/metrics", "/metrics", m.handler(), read)
	mux.Handle("/", m.instrument(otherRoute, http.NotFoundHandler()))
	return withHeaders(inst.Name(), mux)
}

// withHeaders sets X-Instance and X-Version on every response of h.
func withHeaders(instance string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Instance", instance)
		w.Header().Set("X-Version", version)
		h.ServeHTTP(w, r)
	})
}

// allowMethods passes requests using one of methods to h and answers any
// other method with 405 and an Allow header listing methods.
func allowMethods(methods []string, h http.Handler) http.Handler {
	allow := strings.Join(methods, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range methods {
			if r.Method == m {
				h.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("Allow", allow)
		http.Error(w, fmt.Sprintf("method %s not allowed; use %s", r.Method, allow), http.StatusMethodNotAllowed)
	})
}

// hello answers with a greeting naming the instance, so a client can see
// which of the instances sharing the socket served it.
func hello(instance string) http.Handler {
	body := "hello from instance " + instance + "\n"
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, body)
	})
}

// versionHandler answers with the version the binary was built as.
func versionHandler(w http.ResponseWriter, _ *http.Request) {
	writeText(w, version+"\n")
}

// work keeps a CPU busy for ?ms= milliseconds, or until the client goes
// away, and reports how long it worked.
func work(w http.ResponseWriter, r *http.Request) {
	d, ok := millisParam(w, r, maxWorkMillis)
	if !ok {
		return
	}
	took := burn(r.Context(), d)
	writeText(w, fmt.Sprintf("worked %d ms\n", took.Milliseconds()))
}

// sleep holds the request for ?ms= milliseconds, or until the client goes
// away, and reports how long it slept.
func sleep(w http.ResponseWriter, r *http.Request) {
	d, ok := millisParam(w, r, maxSleepMillis)
	if !ok {
		return
	}
	took := hold(r.Context(), d)
	writeText(w, fmt.Sprintf("slept %d ms\n", took.Milliseconds()))
}

// millisParam reads the ms query parameter of r, bounded by max. When it is
// missing or invalid, it answers 400 and returns false.
func millisParam(w http.ResponseWriter, r *http.Request, max int) (time.Duration, bool) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, fmt.Sprintf("malformed query string: want ?ms=N with N from 0 to %d", max), http.StatusBadRequest)
		return 0, false
	}
	d, err := parseMillis(values, max)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return 0, false
	}
	return d, true
}

// maxQuoted is how much of a rejected value an error message repeats.
const maxQuoted = 20

// parseMillis returns the duration given by the single "ms" value in
// values: a base-10 integer of milliseconds from 0 to max, digits only (no
// sign, exponent or white space). Errors are one line and state the range.
func parseMillis(values url.Values, max int) (time.Duration, error) {
	want := fmt.Sprintf("want ms=N with N a whole number of milliseconds from 0 to %d", max)
	vs := values["ms"]
	switch {
	case len(vs) == 0:
		return 0, fmt.Errorf("missing query parameter ms: %s", want)
	case len(vs) > 1:
		return 0, fmt.Errorf("query parameter ms given %d times: %s", len(vs), want)
	case vs[0] == "":
		return 0, fmt.Errorf("query parameter ms is empty: %s", want)
	}
	s := vs[0]
	if rest, neg := strings.CutPrefix(s, "-"); neg && isDigits(rest) {
		return 0, fmt.Errorf("ms=%s is negative: %s", quote(s), want)
	}
	if !isDigits(s) {
		return 0, fmt.Errorf("ms=%s is not a plain decimal number: %s", quote(s), want)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > max { // digits only, so err means out of range
		return 0, fmt.Errorf("ms=%s is too large: %s", quote(s), want)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// isDigits reports whether s is non-empty and made of ASCII digits only.
func isDigits(s string) bool {
	return s != "" && strings.TrimLeft(s, "0123456789") == ""
}

// quote returns s quoted for an error message, cut to maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "…"
	}
	return strconv.Quote(s)
}

// burn spins on the CPU until d has passed or ctx is done, and returns how
// long it spun.
func burn(ctx context.Context, d time.Duration) time.Duration {
	start := time.Now()
	deadline := start.Add(d)
	done := ctx.Done()
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return time.Since(start)
		default:
		}
	}
	return time.Since(start)
}

// hold waits until d has passed or ctx is done, and returns how long it
// waited.
func hold(ctx context.Context, d time.Duration) time.Duration {
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return time.Since(start)
}

// writeText answers 200 with a plain-text body.
func writeText(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(body))
}

// Package loadtest is the closed-loop HTTP load generator of the project's
// tests: clients send request after request and every failure is counted.
//
// Requests are POSTs without a body, which Go's HTTP client never retries
// on its own, so a connection dropped by the server shows up as a failed
// request instead of being hidden by a transparent retry.
package loadtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Config says where the load goes.
type Config struct {
	// URL is the base URL, e.g. "http://127.0.0.1:8080".
	URL string
	// KeepAlive reuses each client's connection; otherwise every request
	// opens a new one.
	KeepAlive bool
	// Dial, if set, opens the connections (e.g. into another network
	// namespace).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout bounds each request; 0 means 30 seconds.
	Timeout time.Duration
	// Record keeps every successful request's latency for percentiles.
	Record bool
}

// Load is a running set of clients.
type Load struct {
	cfg   Config
	stopc chan struct{}
	wg    sync.WaitGroup

	total  atomic.Int64
	failed atomic.Int64

	mu         sync.Mutex
	errs       []string
	failures   []Failure
	byInstance map[string]int64
	maxLatency time.Duration
	latencies  []time.Duration // of successful requests, when Config.Record
}

// Result sums up the requests sent so far.
type Result struct {
	Total      int64            // requests completed or failed
	Failed     int64            // transport errors and non-200 answers
	Errors     []string         // the first few failures
	Failures   []Failure        // the first MaxFailures failures, in the order they ended
	ByInstance map[string]int64 // successful answers per X-Instance header
	MaxLatency time.Duration    // slowest successful request
	Latencies  []time.Duration  // sorted, when Config.Record
}

// MaxFailures bounds how many failures a Load keeps in Result.Failures.
const MaxFailures = 100000

// Failure is one failed request: when it was due or sent, when it failed,
// and why. LastInstance is the X-Instance of the answer its client got
// before, when that client keeps its connection alive: the instance that
// most likely held the connection.
type Failure struct {
	Start, End   time.Time
	Path         string
	Err          error
	LastInstance string
}

// Percentile returns the latency below which the fraction q (0 to 1) of
// the recorded requests fell, or 0 without recorded latencies.
func (r Result) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.Latencies)-1))
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// New returns a Load with no clients yet.
func New(cfg Config) *Load {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Load{cfg: cfg, stopc: make(chan struct{}), byInstance: map[string]int64{}}
}

// Run starts n clients that request path in a loop until Stop.
func (l *Load) Run(n int, path string) {
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := l.client()
			defer c.CloseIdleConnections()
			var last string
			for {
				select {
				case <-l.stopc:
					return
				default:
				}
				l.oneAt(c, path, time.Now(), &last)
			}
		}()
	}
}

// One sends a single request to path from the calling goroutine and
// counts it like the clients' requests.
func (l *Load) One(path string) {
	c := l.client()
	defer c.CloseIdleConnections()
	l.oneAt(c, path, time.Now(), new(string))
}

func (l *Load) client() *http.Client {
	tr := &http.Transport{DisableKeepAlives: !l.cfg.KeepAlive, MaxIdleConnsPerHost: 1}
	if l.cfg.Dial != nil {
		tr.DialContext = l.cfg.Dial
	}
	return &http.Client{Timeout: l.cfg.Timeout, Transport: tr}
}

// oneAt sends one request and counts its latency from start. last holds
// the instance that answered the client's previous request.
func (l *Load) oneAt(c *http.Client, path string, start time.Time, last *string) {
	resp, err := c.Post(l.cfg.URL+path, "text/plain", http.NoBody)
	instance := ""
	if err == nil {
		instance = resp.Header.Get("X-Instance")
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s", resp.Status)
		}
	}
	end := time.Now()
	took := end.Sub(start)
	l.total.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed.Add(1)
		if len(l.errs) < 20 {
			l.errs = append(l.errs, fmt.Sprintf("%s POST %s: %v", start.Format("15:04:05.000"), path, err))
		}
		if len(l.failures) < MaxFailures {
			f := Failure{Start: start, End: end, Path: path, Err: err}
			if l.cfg.KeepAlive {
				f.LastInstance = *last
			}
			l.failures = append(l.failures, f)
		}
		*last = ""
		return
	}
	*last = instance
	l.byInstance[instance]++
	l.maxLatency = max(l.maxLatency, took)
	if l.cfg.Record {
		l.latencies = append(l.latencies, took)
	}
}

// RunRate sends requests to path at a constant rate (requests per second)
// from up to workers concurrent clients until Stop. A request's latency is
// counted from when it was due, so a server that falls behind shows it
// (no coordinated omission); requests that find no free client wait.
func (l *Load) RunRate(rate float64, workers int, path string) {
	due := make(chan time.Time, workers)
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := l.client()
			defer c.CloseIdleConnections()
			var last string
			for t := range due {
				l.oneAt(c, path, t, &last)
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(due)
		interval := time.Duration(float64(time.Second) / rate)
		next := time.Now()
		for {
			select {
			case <-l.stopc:
				return
			case <-time.After(time.Until(next)):
			}
			due <- next
			next = next.Add(interval)
		}
	}()
}

// Snapshot returns the figures so far without stopping.
func (l *Load) Snapshot() Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	by := make(map[string]int64, len(l.byInstance))
	for k, v := range l.byInstance {
		by[k] = v
	}
	lat := slices.Clone(l.latencies)
	slices.Sort(lat)
	return Result{
		Total: l.total.Load(), Failed: l.failed.Load(),
		Errors: append([]string(nil), l.errs...), Failures: slices.Clone(l.failures), ByInstance: by, MaxLatency: l.maxLatency, Latencies: lat,
	}
}

// Stop stops every client, waits for their requests in flight, and
// returns the final figures.
func (l *Load) Stop() Result {
	close(l.stopc)
	l.wg.Wait()
	return l.Snapshot()
}

// Instances lists the instances that answered, sorted.
func (r Result) Instances() []string {
	names := make([]string, 0, len(r.ByInstance))
	for k := range r.ByInstance {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

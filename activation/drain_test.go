package activation_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Instances sharing one listening socket are stopped and replaced one at a
// time, the way systemctl restart does it, under sustained load with long
// requests in flight: no request may fail and every long request completes.
func TestRollingRestartDropsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("rolling restart under load takes seconds")
	}
	for _, keepAlive := range []bool{false, true} {
		name := map[bool]string{false: "fresh connections", true: "keep-alive"}[keepAlive]
		t.Run(name, func(t *testing.T) { testRollingRestart(t, keepAlive) })
	}
}

func testRollingRestart(t *testing.T, keepAlive bool) {
	const instances, rounds = 3, 2
	sock, addr := tcpSocket(t)
	start := func(slot int) *worker {
		w := startWorker(t, workerSpec{
			files: []*os.File{sock}, names: []string{"app.socket"},
			env: []string{"INSTANCE=" + strconv.Itoa(slot)},
		})
		w.rec.waitCount(t, "READY=1", 1, 10*time.Second)
		return w
	}
	workers := make([]*worker, instances)
	for k := range workers {
		workers[k] = start(k)
	}

	ld := newLoad(addr, keepAlive)
	ld.run(24, "/")       // short requests
	ld.run(8, "/?ms=300") // long requests, always some in flight
	time.Sleep(300 * time.Millisecond)
	drainedInFlight := 0
	for r := 0; r < rounds; r++ {
		for k, w := range workers {
			w.signal(t, syscall.SIGTERM)
			if code := w.wait(t, 20*time.Second); code != 0 {
				t.Fatalf("instance %d exited %d; stderr:\n%s", k, code, w.stderr.String())
			}
			drainedInFlight += inFlightAtDrain(t, w.stderr.String())
			workers[k] = start(k)
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(200 * time.Millisecond)
	total, long, failed := ld.stop()
	t.Logf("%d requests (%d long) across %d restarts, %d in flight when a drain began, %d failed",
		total, long, instances*rounds, drainedInFlight, failed)
	for _, e := range ld.errors() {
		t.Error(e)
	}
	if drainedInFlight == 0 {
		t.Error("no drain began with requests in flight; the test proved nothing about draining")
	}
	if failed != 0 || total == 0 || long == 0 {
		t.Fatalf("%d of %d requests failed (%d long completed)", failed, total, long)
	}
}

// load is a closed-loop load generator. Requests are POSTs, which Go's
// client never retries on its own, so every dropped connection shows up as
// a failure.
type load struct {
	url       string
	keepAlive bool
	stopc     chan struct{}
	wg        sync.WaitGroup
	total     atomic.Int64
	long      atomic.Int64
	failed    atomic.Int64
	mu        sync.Mutex
	errs      []string
}

func newLoad(addr string, keepAlive bool) *load {
	return &load{url: "http://" + addr, keepAlive: keepAlive, stopc: make(chan struct{})}
}

// run starts n clients looping on path, each with its own connection pool.
func (l *load) run(n int, path string) {
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{
				Timeout:   10 * time.Second,
				Transport: &http.Transport{DisableKeepAlives: !l.keepAlive, MaxIdleConnsPerHost: 1},
			}
			for {
				select {
				case <-l.stopc:
					return
				default:
				}
				l.one(c, path)
			}
		}()
	}
}

func (l *load) one(c *http.Client, path string) {
	resp, err := c.Post(l.url+path, "text/plain", http.NoBody)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s", resp.Status)
		}
	}
	l.total.Add(1)
	if err != nil {
		l.failed.Add(1)
		l.mu.Lock()
		if len(l.errs) < 10 {
			l.errs = append(l.errs, fmt.Sprintf("POST %s: %v", path, err))
		}
		l.mu.Unlock()
		return
	}
	if path != "/" {
		l.long.Add(1)
	}
}

func (l *load) stop() (total, long, failed int64) {
	close(l.stopc)
	l.wg.Wait()
	return l.total.Load(), l.long.Load(), l.failed.Load()
}

func (l *load) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs
}

// inFlightAtDrain reads the in_flight figure of the worker's "draining" log
// record.
func inFlightAtDrain(t *testing.T, stderr string) int {
	t.Helper()
	m := regexp.MustCompile(`msg=draining .*in_flight=(\d+)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no draining record in worker log:\n%s", stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

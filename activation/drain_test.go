package activation_test

import (
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/unitkit/unitkit/activation"
	"github.com/unitkit/unitkit/internal/loadtest"
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
		t.Run(name, func(t *testing.T) { testRollingRestart(t, keepAlive, false) })
	}
	// Instances that accept exclusively and ones that use Go's own loop
	// (as any program not built on this package does, Node included)
	// share the socket without a failed request.
	t.Run("mixed accept modes", func(t *testing.T) { testRollingRestart(t, false, true) })
}

func testRollingRestart(t *testing.T, keepAlive, mixed bool) {
	const instances, rounds = 3, 2
	sock, addr := tcpSocket(t)
	start := func(slot int) *worker {
		env := []string{"INSTANCE=" + strconv.Itoa(slot)}
		if mixed {
			env = append(env, "ACCEPT_MODE="+[]string{activation.AcceptShared, activation.AcceptExclusive}[slot%2])
		}
		w := startWorker(t, workerSpec{
			files: []*os.File{sock}, names: []string{"app.socket"}, env: env,
		})
		w.rec.waitCount(t, "READY=1", 1, 10*time.Second)
		return w
	}
	workers := make([]*worker, instances)
	for k := range workers {
		workers[k] = start(k)
	}

	short := loadtest.New(loadtest.Config{URL: "http://" + addr, KeepAlive: keepAlive})
	long := loadtest.New(loadtest.Config{URL: "http://" + addr, KeepAlive: keepAlive})
	short.Run(24, "/")
	long.Run(8, "/?ms=300") // always some in flight
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
	s, l := short.Stop(), long.Stop()
	total, failed := s.Total+l.Total, s.Failed+l.Failed
	t.Logf("%d requests (%d long) across %d restarts, %d in flight when a drain began, %d failed",
		total, l.Total, instances*rounds, drainedInFlight, failed)
	for _, e := range append(s.Errors, l.Errors...) {
		t.Error(e)
	}
	if drainedInFlight == 0 {
		t.Error("no drain began with requests in flight; the test proved nothing about draining")
	}
	if failed != 0 || s.Total == 0 || l.Total == 0 {
		t.Fatalf("%d of %d requests failed", failed, total)
	}
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

// With exclusive accepting, idle instances sharing a socket
// take new connections in turn: one client sending request after request,
// each on a new connection, reaches every instance about equally often.
// Shared accepting is only required to reach every instance. Each worker
// logs the accept mode it runs.
func TestExclusiveAcceptTakesTurns(t *testing.T) {
	for _, mode := range []string{activation.AcceptExclusive, activation.AcceptShared} {
		t.Run(mode, func(t *testing.T) {
			const instances, requests = 3, 300
			sock, addr := tcpSocket(t)
			var workers []*worker
			for k := range instances {
				w := startWorker(t, workerSpec{
					files: []*os.File{sock}, names: []string{"app.socket"},
					env: []string{"INSTANCE=" + strconv.Itoa(k), "ACCEPT_MODE=" + mode},
				})
				w.rec.waitCount(t, "READY=1", 1, 10*time.Second)
				workers = append(workers, w)
			}
			for _, w := range workers {
				w.waitLog(t, "accept="+mode, 10*time.Second)
			}
			l := loadtest.New(loadtest.Config{URL: "http://" + addr})
			for range requests {
				l.One("/")
			}
			r := l.Stop()
			t.Logf("%s: %d requests, per instance %v", mode, r.Total, r.ByInstance)
			if r.Failed != 0 || len(r.ByInstance) != instances {
				t.Fatalf("%d failed, %d of %d instances served: %v", r.Failed, len(r.ByInstance), instances, r.Errors)
			}
			for name, n := range r.ByInstance {
				if mode == activation.AcceptExclusive && n < requests/instances/3 {
					t.Errorf("instance %s served %d of %d requests; idle instances should take turns", name, n, requests)
				}
			}
		})
	}
}

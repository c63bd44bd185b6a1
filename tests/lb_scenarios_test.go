package tests

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
	"github.com/unitkit/unitkit/tests/sandbox"
)

// hostAddrs are the addresses of the two hosts in contrib/haproxy and
// contrib/nginx, so the tests run those files unchanged; lbAddrs are the
// balancer's ends of its links to them.
var (
	hostAddrs = []string{"192.0.2.11", "192.0.2.12"}
	lbAddrs   = []string{"192.0.2.1", "192.0.2.2"}
)

// balancer is a load balancer from Debian configured from contrib/.
type balancer struct {
	name    string
	install func(lb *herd)        // puts the configuration in place, validates it and starts it
	drain   func(lb *herd, i int) // takes host i out before maintenance, the way its README says
	host    []string              // the X-Served-By value naming each host
	// drainCost is how many keep-alive clients may lose a request when
	// drain runs: nginx takes a host out by reloading, and its old workers
	// close idle client connections, which races a client sending on one.
	drainCost int64
}

var balancers = []balancer{
	{
		name: "haproxy",
		install: func(lb *herd) {
			lb.must(lb.s.CopyFile(filepath.Join("..", "contrib", "haproxy", "haproxy.cfg"), "/etc/haproxy/haproxy.cfg", 0o644))
			lb.s.MustRun(lb.t, "haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg")
			lb.systemctl("start", "haproxy.service")
		},
		drain: func(lb *herd, i int) {
			lb.haproxyCommand(fmt.Sprintf("set server app/host%d state drain", i+1))
		},
		host: []string{"host1", "host2"},
	},
	{
		name: "nginx",
		install: func(lb *herd) {
			lb.must(lb.s.CopyFile(filepath.Join("..", "contrib", "nginx", "unitkit.conf"), "/etc/nginx/conf.d/unitkit.conf", 0o644))
			lb.s.MustRun(lb.t, "rm", "-f", "/etc/nginx/sites-enabled/default")
			lb.s.MustRun(lb.t, "nginx", "-t")
			lb.systemctl("start", "nginx.service")
		},
		drain: func(lb *herd, i int) {
			line := "server " + hostAddrs[i] + ":8080 "
			lb.s.MustRun(lb.t, "sed", "-i", "s/"+line+"/"+line+"down /", "/etc/nginx/conf.d/unitkit.conf")
			lb.systemctl("reload", "nginx.service")
		},
		host:      []string{"192.0.2.11:8080", "192.0.2.12:8080"},
		drainCost: keepAliveClients,
	},
}

// lab is two hosts, each a sandbox running the packaged service with two
// instances, and a third sandbox linked to both by veth pairs that runs the
// balancer.
type lab struct {
	t     *testing.T
	b     balancer
	hosts []*herd
	lb    *herd
}

func newLab(t *testing.T, b balancer) *lab {
	t.Helper()
	l := &lab{t: t, b: b, lb: &herd{t: t, s: sandbox.New(t)}}
	if _, err := l.lb.s.Run(t.Context(), "sh", "-c", "command -v "+b.name); err != nil {
		t.Fatalf("%s not found: apt-get install %s", b.name, b.name)
	}
	deb := buildDeb(t, release{"app", "1.0.0", "./cmd/app"})
	for i := range hostAddrs {
		h := newPackageHost(t)
		if out, code := h.aptInstall(deb); code != 0 {
			t.Fatalf("install on host %d: exit %d\n%s", i+1, code, out)
		}
		if out, code := h.appctl("scale", "2"); code != 0 {
			t.Fatalf("scale on host %d: exit %d\n%s", i+1, code, out)
		}
		h.must(sandbox.Link(t.Context(), l.lb.s, lbAddrs[i], h.s, hostAddrs[i]))
		l.hosts = append(l.hosts, h)
	}
	b.install(l.lb)
	l.waitServedBy("both hosts in rotation", b.host...)
	return l
}

// load starts a load generator against the balancer's port 80, inside its
// network.
func (l *lab) load(keepAlive bool) *loadtest.Load {
	return loadtest.New(loadtest.Config{URL: "http://127.0.0.1:80", Dial: l.lb.s.DialContext, KeepAlive: keepAlive})
}

// servedBy sends n requests through the balancer and counts the hosts that
// answered them.
func (l *lab) servedBy(n int) (map[string]int, error) {
	c := l.lb.s.HTTPClient(false)
	seen := map[string]int{}
	for range n {
		resp, err := c.Get("http://127.0.0.1:80/")
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status %s", resp.Status)
		}
		// nginx lists every host it tried; the last one answered.
		tried := strings.Split(resp.Header.Get("X-Served-By"), ", ")
		seen[tried[len(tried)-1]]++
	}
	return seen, nil
}

// waitServedBy waits until 20 requests in a row are answered by exactly the
// given hosts.
func (l *lab) waitServedBy(what string, hosts ...string) {
	l.t.Helper()
	var last map[string]int
	var lastErr error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		last, lastErr = l.servedBy(20)
		if lastErr == nil && len(last) == len(hosts) && allIn(last, hosts) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.t.Fatalf("%s: not within 30s; last answers by %v (%v)\n%s", what, last, lastErr, l.lb.s.Journal("-n", "30"))
}

func allIn(seen map[string]int, hosts []string) bool {
	for _, h := range hosts {
		if seen[h] == 0 {
			return false
		}
	}
	return true
}

// A real HAProxy and a real nginx from Debian, configured from contrib/, in
// front of two hosts running the packaged service: reloading one host's
// instances under load through the balancer fails no request, and stopping
// one host entirely fails at most the requests in flight, after which the
// other host serves everything until the stopped one comes back.
func TestLoadBalancerInFront(t *testing.T) {
	for _, b := range balancers {
		t.Run(b.name, func(t *testing.T) {
			l := newLab(t, b)
			l.reloadOneHost()
			l.stopOneHost()
			l.maintainOneHost()
		})
	}
}

// traffic is the scenarios' load through the balancer, all POST requests:
// 16 clients with a fresh connection per request, keepAliveClients with
// keep-alive, and 4 with 200 ms requests.
type traffic struct{ fresh, kept, slow *loadtest.Load }

// Client counts of the three kinds of traffic.
const (
	freshClients     = 16
	keepAliveClients = 16
	slowClients      = 4
)

// startTraffic starts the load and lets it settle.
func (l *lab) startTraffic() traffic {
	tr := traffic{l.load(false), l.load(true), l.load(false)}
	tr.fresh.Run(freshClients, "/")
	tr.kept.Run(keepAliveClients, "/")
	tr.slow.Run(slowClients, "/sleep?ms=200")
	time.Sleep(500 * time.Millisecond)
	return tr
}

// check stops the load and allows each kind perClient failed requests per
// client, keep-alive clients keepAliveExtra more in all; it returns the
// failed and total requests.
func (tr traffic) check(t *testing.T, what string, perClient, keepAliveExtra int64) (failed, total int64) {
	t.Helper()
	for _, k := range []struct {
		name    string
		ld      *loadtest.Load
		allowed int64
	}{
		{"fresh connections", tr.fresh, perClient * freshClients},
		{"keep-alive", tr.kept, perClient*keepAliveClients + keepAliveExtra},
		{"200 ms requests", tr.slow, perClient * slowClients},
	} {
		r := k.ld.Stop()
		checkLoad(t, what+", "+k.name, r, k.allowed)
		failed, total = failed+r.Failed, total+r.Total
	}
	return failed, total
}

// reloadOneHost reloads host 1's instances under load: zero failures.
func (l *lab) reloadOneHost() {
	tr := l.startTraffic()
	for round := 1; round <= 2; round++ {
		if out, code := l.hosts[0].appctl("reload"); code != 0 {
			l.t.Fatalf("appctl reload on host 1: exit %d\n%s", code, out)
		}
	}
	time.Sleep(300 * time.Millisecond)
	tr.check(l.t, l.b.name+", host 1 reloaded twice", 0, 0)
}

// stopOneHost stops host 2 entirely under load, without telling the
// balancer, then starts it again. The requests that fail are those the
// balancer had sent to host 2 before it took the host out: the ones in
// flight there, or queued on its socket, which systemd closes unread while
// the socket stops. The test bounds them loosely (3 per client, to catch a
// balancer that keeps sending) and checks that from then on host 1 serves
// everything without a failure.
func (l *lab) stopOneHost() {
	tr := l.startTraffic()
	l.hosts[1].systemctl("stop", "app.socket") // PartOf= stops its instances too
	l.waitServedBy("host 1 alone", l.b.host[0])
	failed, total := tr.check(l.t, l.b.name+", host 2 stopped", 3, 0)
	l.t.Logf("%s: host 2 stopped under load: %d of %d requests failed (%d clients)",
		l.b.name, failed, total, freshClients+keepAliveClients+slowClients)

	tr = l.startTraffic()
	time.Sleep(time.Second)
	tr.check(l.t, l.b.name+", host 2 down", 0, 0)
	l.hosts[1].systemctl("start", "app.socket", "app.target")
	l.waitServedBy("host 2 back in rotation", l.b.host...)
}

// maintainOneHost takes host 2 out of the balancer first, as its README
// says to before maintenance, and only then stops it: no request fails.
func (l *lab) maintainOneHost() {
	tr := l.startTraffic()
	l.b.drain(l.lb, 1)
	l.waitServedBy("host 2 drained", l.b.host[0])
	// Returns once host 2's instances have drained what was sent to them.
	l.hosts[1].systemctl("stop", "app.socket")
	time.Sleep(time.Second)
	tr.check(l.t, l.b.name+", host 2 drained then stopped", 0, l.b.drainCost)
}

// haproxyCommand sends one command to HAProxy's runtime API in the
// sandbox and fails the test unless HAProxy accepts it.
func (lb *herd) haproxyCommand(cmd string) {
	lb.t.Helper()
	conn, err := net.Dial("unix", fmt.Sprintf("/proc/%d/root/run/haproxy/admin.sock", lb.s.PID()))
	lb.must(err)
	defer conn.Close()
	_, err = io.WriteString(conn, cmd+"\n")
	lb.must(err)
	out, err := io.ReadAll(conn)
	lb.must(err)
	if reply := strings.TrimSpace(string(out)); reply != "" {
		lb.t.Fatalf("haproxy %q: %s", cmd, reply)
	}
}

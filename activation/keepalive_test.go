package activation_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/unitkit/unitkit/activation"
)

// serveInProcess serves h on a loopback listener until the test ends and
// returns its URL.
func serveInProcess(t *testing.T, h http.Handler, opts ...activation.Option) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, activation.WithListeners(ln), activation.WithoutSignals(),
		activation.WithNotifier(activation.NewNotifierFor("")))
	inst, err := activation.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inst.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitReady(t, inst)
	return "http://" + ln.Addr().String()
}

// waitReady waits until inst reports itself ready, and fails the test
// after 5 s.
func waitReady(t *testing.T, inst *activation.Instance) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for inst.Stats().State != "ready" {
		if time.Now().After(deadline) {
			t.Fatalf("instance not ready after 5s: %s", inst.Stats().State)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// remoteAddr answers with the client's address, which names its connection.
var remoteAddr = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, r.RemoteAddr)
})

// A keep-alive connection carries at most the configured number of
// requests: the response that reaches the bound says "Connection: close"
// and is delivered whole, and the client's next request, on a new
// connection, succeeds.
func TestKeepAliveRequestsBound(t *testing.T) {
	url := serveInProcess(t, remoteAddr, activation.WithKeepAliveLimits(3, 0))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	var conns []string
	for k := 1; k <= 10; k++ {
		resp, err := c.Post(url+"/", "text/plain", http.NoBody) // a POST is never retried
		if err != nil {
			t.Fatalf("request %d: %v", k, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %s, %v", k, resp.Status, err)
		}
		if want := k%3 == 0; resp.Close != want {
			t.Errorf("request %d: Connection: close is %v, want %v", k, resp.Close, want)
		}
		if len(conns) == 0 || conns[len(conns)-1] != string(body) {
			conns = append(conns, string(body))
		}
	}
	if len(conns) != 4 {
		t.Errorf("10 requests with at most 3 per connection came over %d connections, want 4: %q", len(conns), conns)
	}
}

// A keep-alive connection older than the age bound is closed after its
// next response, not while it is idle or busy.
func TestKeepAliveTimeBound(t *testing.T) {
	url := serveInProcess(t, remoteAddr, activation.WithKeepAliveLimits(0, time.Second))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	var closes []bool
	for _, pause := range []time.Duration{0, 0, 1200 * time.Millisecond, 0} {
		time.Sleep(pause)
		resp, err := c.Post(url+"/", "text/plain", http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		closes = append(closes, resp.Close)
	}
	if want := []bool{false, false, true, false}; !slices.Equal(closes, want) {
		t.Errorf("Connection: close per response %v, want %v", closes, want)
	}
}

// Without bounds a connection carries every request.
func TestKeepAliveUnbounded(t *testing.T) {
	url := serveInProcess(t, remoteAddr, activation.WithKeepAliveLimits(0, 0))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	for k := range 50 {
		resp, err := c.Post(url+"/", "text/plain", http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			t.Fatalf("request %d closed its connection with no bound set", k)
		}
	}
}

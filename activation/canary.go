package activation

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
)

// canaryConn marks the server side of an in-memory connection that carries
// a canary request, so it is neither counted nor drained.
type canaryConn struct{ net.Conn }

// canaryListener hands in-memory connections to the http.Server, so the
// canary request travels the same server and handler as client requests
// without touching the shared socket (a request to the socket's address
// could be answered by any instance).
type canaryListener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newCanaryListener() *canaryListener {
	return &canaryListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *canaryListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *canaryListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *canaryListener) Addr() net.Addr { return canaryAddr{} }

// dial returns the client side of a new in-memory connection.
func (l *canaryListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- &canaryConn{server}:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type canaryAddr struct{}

func (canaryAddr) Network() string { return "memory" }
func (canaryAddr) String() string  { return "canary" }

// canary sends requests through the server and its handler over
// in-memory connections; canaryWatch sends them one at a time.
type canary struct {
	ln     *canaryListener
	client *http.Client
	path   string
}

func newCanary(ln *canaryListener, path string) *canary {
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return ln.dial(ctx) },
		DisableKeepAlives: true, // each canary also goes through accept
	}
	return &canary{ln: ln, client: &http.Client{Transport: tr}, path: path}
}

// roundTrip sends one canary and reads its answer; an answer of 500 or
// more is an error. It has no deadline of its own: a wedged handler keeps
// it waiting, which is exactly what canaryWatch looks for.
func (c *canary) roundTrip() error {
	req, err := http.NewRequest(http.MethodGet, "http://canary"+c.path, nil)
	if err != nil {
		return fmt.Errorf("canary: %w", err)
	}
	req.Header.Set("User-Agent", "unitkit-canary")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("canary GET %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 500 {
		return fmt.Errorf("canary GET %s: %s", c.path, resp.Status)
	}
	return nil
}

type canaryKey struct{}

// IsCanary reports whether the request ctx belongs to is the instance's own
// canary (see WithCanaryPath). Handlers can use it to leave canaries out of
// their metrics and logs.
func IsCanary(ctx context.Context) bool {
	v, _ := ctx.Value(canaryKey{}).(bool)
	return v
}

// markCanary is the http.Server.ConnContext callback.
func markCanary(ctx context.Context, c net.Conn) context.Context {
	if _, ok := c.(*canaryConn); ok {
		return context.WithValue(ctx, canaryKey{}, true)
	}
	return ctx
}

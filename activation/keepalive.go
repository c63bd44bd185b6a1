package activation

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Default bounds on one keep-alive connection; $KEEPALIVE_REQUESTS and
// $KEEPALIVE_TIME override them.
const (
	// DefaultKeepAliveRequests is how many requests one connection may
	// carry before its response says "Connection: close".
	DefaultKeepAliveRequests = 100
	// DefaultKeepAliveTime is how long one connection may be reused.
	DefaultKeepAliveTime = time.Minute
)

// keepAliveLimits bound what one client connection may carry, so that
// long-lived connections spread over the instances: a client whose
// connection reached a bound reconnects, and the kernel hands the new
// connection to whichever instance accepts next. The bound is applied
// between requests only: the response that reaches it carries
// "Connection: close" and is delivered whole; the connection closes after
// it. Zero turns a bound off.
type keepAliveLimits struct {
	requests int64
	age      time.Duration
}

func (k keepAliveLimits) off() bool { return k.requests <= 0 && k.age <= 0 }

// connUse counts the requests of one connection.
type connUse struct {
	opened   time.Time
	requests atomic.Int64 // atomic: an HTTP/2 connection serves requests concurrently
}

type connUseKey struct{}

// withConnUse is part of the http.Server.ConnContext callback.
func withConnUse(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connUseKey{}, &connUse{opened: time.Now()})
}

// last counts r on its connection and reports whether the connection
// should close after this response. HTTP/2 connections are left alone:
// "Connection: close" means nothing there.
func (k keepAliveLimits) last(r *http.Request) bool {
	if k.off() || r.ProtoMajor != 1 {
		return false
	}
	u, ok := r.Context().Value(connUseKey{}).(*connUse)
	if !ok {
		return false
	}
	n := u.requests.Add(1)
	return (k.requests > 0 && n >= k.requests) || (k.age > 0 && time.Since(u.opened) >= k.age)
}

package loadtest

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Closed-loop and constant-rate loads against a real server count what
// they sent, and percentiles come from the recorded latencies.
func TestLoad(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Instance", "1")
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	l := New(Config{URL: srv.URL, Record: true})
	l.Run(2, "/")
	l.Run(1, "/fail")
	time.Sleep(100 * time.Millisecond)
	r := l.Stop()
	if r.Total == 0 || r.Failed == 0 || r.ByInstance["1"] != r.Total-r.Failed || int64(len(r.Latencies)) != r.Total-r.Failed {
		t.Fatalf("closed loop: %+v", r)
	}
	if r.Percentile(0.5) > r.Percentile(0.99) || r.Percentile(1) != r.MaxLatency {
		t.Fatalf("percentiles: p50 %s p99 %s max %s", r.Percentile(0.5), r.Percentile(0.99), r.MaxLatency)
	}

	rate := New(Config{URL: srv.URL, KeepAlive: true})
	rate.RunRate(200, 4, "/")
	time.Sleep(500 * time.Millisecond)
	rr := rate.Stop()
	if rr.Total < 50 || rr.Total > 150 || rr.Failed != 0 {
		t.Fatalf("200/s for 0.5 s sent %d (%d failed)", rr.Total, rr.Failed)
	}
}

// Every failure is kept with its times and error, and a keep-alive client's
// failure names the instance that answered it before.
func TestFailuresRecorded(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Instance", "7")
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	l := New(Config{URL: srv.URL, KeepAlive: true})
	for range 4 {
		l.One("/")
	}
	rate := New(Config{URL: srv.URL, KeepAlive: true})
	rate.RunRate(100, 1, "/x")
	time.Sleep(100 * time.Millisecond)
	r, rr := l.Stop(), rate.Stop()
	if r.Failed != 2 || len(r.Failures) != 2 {
		t.Fatalf("one by one: %d failed, %d recorded", r.Failed, len(r.Failures))
	}
	for _, f := range r.Failures {
		if f.Err == nil || f.End.Before(f.Start) || f.Path != "/" || f.LastInstance != "" {
			t.Errorf("failure %+v", f)
		}
	}
	if rr.Failed == 0 || int64(len(rr.Failures)) != rr.Failed {
		t.Fatalf("constant rate: %d failed, %d recorded", rr.Failed, len(rr.Failures))
	}
	for _, f := range rr.Failures {
		if f.LastInstance != "7" {
			t.Errorf("keep-alive failure after an answer from 7 names %q", f.LastInstance)
		}
	}
}

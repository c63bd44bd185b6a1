package tests

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// The first connection to the socket, with no instance running, starts one
// and is served.
func TestSocketActivation(t *testing.T) {
	h := newHerd(t)
	if st := h.show("app@1.service", "ActiveState")["ActiveState"]; st != "inactive" {
		t.Fatalf("app@1 is %s before any connection", st)
	}
	start := time.Now()
	resp, err := h.s.HTTPClient(false).Get("http://127.0.0.1:8080/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != 200 || resp.Header.Get("X-Instance") != "1" {
		t.Fatalf("first request: %s X-Instance=%q %q", resp.Status, resp.Header.Get("X-Instance"), body)
	}
	t.Logf("first request with no instance running served by app@1 in %s", took.Round(time.Millisecond))
	if st := h.show("app@1.service", "ActiveState")["ActiveState"]; st != "active" {
		t.Fatalf("app@1 is %s after the first connection", st)
	}
}

// Four instances share the one socket and every one of them serves.
func TestFourInstancesShareTheSocket(t *testing.T) {
	h := newHerd(t)
	h.systemctl(append([]string{"start"}, instances(1, 4)...)...)
	ld := h.load(false)
	ld.Run(16, "/")
	time.Sleep(2 * time.Second)
	r := ld.Stop()
	checkLoad(t, "4 instances", r, 0)
	if got := r.Instances(); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Fatalf("answers came from instances %q, want 1 to 4", got)
	}
	status := h.systemctl("status", "app@1.service", "--no-pager", "-n", "0")
	if !strings.Contains(status, "Status: \"ready: ") {
		t.Errorf("systemctl status shows no STATUS= line from the instance:\n%s", status)
	}
	// The instance logs natively to the journal, with its own fields.
	export := h.s.Journal("-u", "app@2.service", "-o", "export", "MESSAGE=ready")
	for _, field := range []string{"INSTANCE=2", "PRIORITY=6", "SYSLOG_IDENTIFIER=app"} {
		if !strings.Contains(export, "\n"+field+"\n") {
			t.Errorf("journal record of app@2 lacks %s:\n%s", field, export)
		}
	}
}

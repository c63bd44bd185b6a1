package activation_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/activation"
)

// Every Notifier call arrives as the documented assignments on a real unix
// datagram socket.
func TestNotifierSendsAssignments(t *testing.T) {
	rec := newRecorder(t)
	n := activation.NewNotifierFor(rec.path)
	for _, err := range []error{
		n.Ready("serving"), n.Status("two\nlines"), n.Watchdog(),
		n.Reloading(""), n.ExtendTimeout(1500 * time.Millisecond), n.Stopping("bye"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"READY=1", "STATUS=serving", "STATUS=two lines", "WATCHDOG=1",
		"RELOADING=1", "EXTEND_TIMEOUT_USEC=1500000", "STOPPING=1", "STATUS=bye"}
	rec.waitCount(t, "STATUS=bye", 1, 5*time.Second)
	got := slices.DeleteFunc(rec.lines(), func(l string) bool { return strings.HasPrefix(l, "MONOTONIC_USEC=") })
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := n.Notify("READY=1\nSTOPPING=1"); err == nil {
		t.Error("an assignment with a newline was accepted")
	}
}

// Outside systemd a Notifier sends nothing and reports no error; a socket
// that does not exist is an error.
func TestNotifierWithoutSocket(t *testing.T) {
	if err := activation.NewNotifierFor("").Ready(""); err != nil {
		t.Fatal(err)
	}
	if err := activation.NewNotifierFor("/nonexistent/notify").Ready(""); err == nil {
		t.Fatal("no error for a missing socket")
	}
}

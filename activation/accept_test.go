package activation

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseEpollInfo(t *testing.T) {
	const info = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n" +
		"tfd:        4 events:       19 data:     7f1c5e8a1008  pos:0 ino:9b5 sdev:8\n" +
		"tfd:        7 events: 80002005 data:     7f1c5e8a1140  pos:0 ino:1f2c sdev:8\n"
	for _, tc := range []struct {
		fd     int
		found  bool
		events uint32
		data   uint64
	}{
		{fd: 7, found: true, events: 0x80002005, data: 0x7f1c5e8a1140},
		{fd: 4, found: true, events: 0x19, data: 0x7f1c5e8a1008},
		{fd: 1, found: false},
		{fd: 70, found: false}, // not a prefix match on "7"
	} {
		reg, found, err := parseEpollInfo(info, tc.fd)
		if err != nil || found != tc.found || reg.events != tc.events || reg.data != tc.data {
			t.Errorf("fd %d: got %+v, %v, %v; want events %#x data %#x found %v", tc.fd, reg, found, err, tc.events, tc.data, tc.found)
		}
	}
	for _, bad := range []string{
		"tfd: 7 events: zz data: 1 pos:0 ino:1 sdev:8\n",
		"tfd: 7 events: 19 data: 1x pos:0 ino:1 sdev:8\n",
		"tfd: 7 mask: 19 data: 1 pos:0 ino:1 sdev:8\n",
	} {
		if _, _, err := parseEpollInfo(bad, 7); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// An exclusive listener keeps Go's registration until it first accepts,
// then is watched by Go's own netpoller with EPOLLEXCLUSIVE and the
// runtime's data; paused, it is not watched at all; resumed, it is again,
// and it accepts throughout as Go's listener does.
func TestExclusiveRegistration(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := descriptor(ln)
	if err != nil {
		t.Fatal(err)
	}
	before, err := pollerRegistration(fd)
	if err != nil {
		t.Fatal(err)
	}
	el, ok := exclusive(ln).(*exclusiveListener)
	if !ok {
		ln.Close()
		t.Skip("no EPOLLEXCLUSIVE on this kernel, or no fdinfo")
	}
	defer el.Close()
	if reg, err := pollerRegistration(fd); err != nil || reg != before {
		t.Fatalf("before the first Accept: %+v, %v; want Go's own %+v", reg, err, before)
	}
	acceptOne(t, el)
	after, err := pollerRegistration(fd)
	if err != nil {
		t.Fatal(err)
	}
	if after.epfd != before.epfd || after.data != before.data || watched(after) != exclusiveEvents {
		t.Fatalf("registration %+v, want Go's %+v with events %#x", after, before, uint32(exclusiveEvents))
	}
	if err := el.interrupt(); err != nil {
		t.Fatal(err)
	}
	if reg, err := pollerRegistration(fd); err == nil {
		t.Fatalf("paused, still watched: %+v", reg)
	}
	if _, err := el.Accept(); err == nil || !el.interrupted(err) {
		t.Fatalf("paused Accept: %v, want the interruption", err)
	}
	if err := el.clear(); err != nil {
		t.Fatal(err)
	}
	if reg, err := pollerRegistration(fd); err != nil || watched(reg) != exclusiveEvents {
		t.Fatalf("resumed: %+v, %v", reg, err)
	}
	acceptOne(t, el)
}

// watched is what reg asked for: the kernel adds EPOLLERR and EPOLLHUP to
// every registration.
func watched(reg registration) uint32 { return reg.events &^ (unix.EPOLLERR | unix.EPOLLHUP) }

func acceptOne(t *testing.T, ln net.Listener) {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

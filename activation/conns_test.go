package activation

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// A drain closes a keep-alive connection idle past the grace, but not one
// whose next request has arrived unread: the server was only too slow to
// read it.
func TestCloseIdleKeepsConnectionsWithUnreadRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	tr := newConnTracker()
	tr.hook(server, http.StateIdle)
	request := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
	if _, err := client.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !unread(server) {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the server's receive queue")
		}
		time.Sleep(time.Millisecond)
	}
	if open := tr.closeIdle(0); open != 1 {
		t.Fatalf("closeIdle closed a connection with a request waiting: %d open", open)
	}

	buf := make([]byte, len(request))
	if _, err := server.Read(buf); err != nil {
		t.Fatal(err)
	}
	if open := tr.closeIdle(0); open != 0 {
		t.Fatalf("closeIdle left an idle connection with nothing to read: %d open", open)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(buf); err == nil {
		t.Fatalf("the client's connection is still open (read %d bytes)", n)
	}
}

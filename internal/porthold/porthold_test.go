package porthold

import (
	"net"
	"os"
	"testing"
)

func TestFindsThisProcess(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		l, err := net.Listen(network, "localhost:0")
		if err != nil {
			t.Logf("%s: %v", network, err)
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		holders, err := Find("/proc", port)
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(holders) != 1 || holders[0].PID != os.Getpid() || holders[0].PM2 {
			t.Errorf("%s port %d: holders %v, want this process (PID %d)", network, port, holders, os.Getpid())
		}
	}
}

func TestFindsNothingOnAFreePort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if holders, err := Find("/proc", port); err != nil || len(holders) != 0 {
		t.Errorf("free port %d: %v, %v", port, holders, err)
	}
}

func TestPM2(t *testing.T) {
	for _, tc := range []struct {
		name             string
		cmdline, environ []string
		pm2              bool
		app              string
	}{
		{"daemon", []string{"PM2 v7.0.4: God Daemon (/root/.pm2)"}, []string{"HOME=/root"}, true, ""},
		{"fork-mode app", []string{"node", "/srv/app/server.js"}, []string{"pm_id=0", "name=api", "PM2_HOME=/root/.pm2"}, true, "api"},
		{"plain node", []string{"node", "server.js"}, []string{"name=api"}, false, ""},
		{"unreadable", nil, nil, false, ""},
	} {
		pm2, app := pm2Of(tc.cmdline, tc.environ)
		if pm2 != tc.pm2 || app != tc.app {
			t.Errorf("%s: %v %q, want %v %q", tc.name, pm2, app, tc.pm2, tc.app)
		}
	}
	if s := (Holder{PID: 7, Command: "node x.js", PM2: true, PM2Name: "api"}).String(); s != `PID 7 (node x.js), PM2's app "api"` {
		t.Errorf("String() = %s", s)
	}
}

// Package porthold tells which processes listen on a TCP port, from /proc,
// and whether PM2 runs them: appctl import uses it to say what holds the
// port a socket is about to move to.
package porthold

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// listenState is TCP_LISTEN in /proc/net/tcp.
const listenState = "0A"

// Holder is a process with a listening socket on the port.
type Holder struct {
	PID     int
	Command string // its command line, or its name when that is unreadable
	PM2     bool   // PM2's daemon or a process PM2 started
	PM2Name string // the PM2 app's name, when PM2 started the process and said so
}

// String describes the holder for an error message.
func (h Holder) String() string {
	s := fmt.Sprintf("PID %d (%s)", h.PID, h.Command)
	switch {
	case h.PM2 && h.PM2Name != "":
		s += ", PM2's app " + strconv.Quote(h.PM2Name)
	case h.PM2:
		s += ", PM2"
	}
	return s
}

// Find returns the processes, as seen in the proc file system at root
// (normally /proc), that hold a TCP socket listening on port, over IPv4
// or IPv6. Processes that cannot be read (they exit, or belong to another
// user) are left out.
func Find(root string, port int) ([]Holder, error) {
	fs, err := procfs.NewFS(root)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", root, err)
	}
	inodes := listening(root, port)
	if len(inodes) == 0 {
		return nil, nil
	}
	procs, err := fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []Holder
	for _, p := range procs {
		targets, err := p.FileDescriptorTargets()
		if err != nil {
			continue
		}
		for _, t := range targets {
			if inodes[t] {
				out = append(out, describe(p))
				break
			}
		}
	}
	return out, nil
}

// listening returns the socket inodes, as fd link targets
// ("socket:[123]"), listening on port, from /proc/net/tcp and tcp6.
func listening(root string, port int) map[string]bool {
	inodes := map[string]bool{}
	for _, file := range []string{"net/tcp", "net/tcp6"} {
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			continue // no IPv6, or no IPv4
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != listenState {
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	return inodes
}

func describe(p procfs.Proc) Holder {
	h := Holder{PID: p.PID}
	cmdline, _ := p.CmdLine()
	h.Command = strings.Join(cmdline, " ")
	if h.Command == "" {
		h.Command, _ = p.Comm()
	}
	environ, _ := p.Environ()
	h.PM2, h.PM2Name = pm2Of(cmdline, environ)
	return h
}

// pm2Of tells whether a process is PM2's daemon ("PM2 v5.3.0: God
// Daemon (/root/.pm2)") or one it started (its environment has pm_id or
// PM2_HOME, and name), and the app's name.
func pm2Of(cmdline, environ []string) (bool, string) {
	pm2, name := len(cmdline) > 0 && strings.HasPrefix(cmdline[0], "PM2 "), ""
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "pm_id", "PM2_HOME":
			pm2 = true
		case "name":
			name = v
		}
	}
	if !pm2 {
		name = ""
	}
	return pm2, name
}

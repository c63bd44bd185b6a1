// Package remote is appctl's transport to other machines: plain ssh with
// the operator's own keys, agent and known_hosts, nothing new listening on
// the remote side. Dialer.Run runs a command line there: appctl -H runs
// the host's own appctl, not systemd's D-Bus API through "ssh host
// systemd-stdio-bridge" as systemctl -H does (docs/decisions.md says why).
//
// Host names come from the command line and end up in ssh's argv, so they
// are checked strictly (ParseHosts) before anything runs, and ssh is given
// "--" before the destination: an option such as -oProxyCommand=… can
// never reach it.
package remote

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
)

// Host is one validated destination, [user@]host.
type Host struct {
	User string // "" for ssh's default (the operator's login or ssh_config)
	Name string // a host name, an IPv4 or an IPv6 address
}

// String returns the destination as ssh takes it.
func (h Host) String() string {
	if h.User == "" {
		return h.Name
	}
	return h.User + "@" + h.Name
}

var (
	userName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)
	hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
)

// ParseHost checks one [user@]host. The user follows the usual login-name
// rules; the host is a DNS name, an IPv4 address or an IPv6 address
// (bare, as ssh takes it). Nothing else passes: no spaces, no leading
// "-", no control characters, no ssh:// form.
func ParseHost(s string) (Host, error) {
	if s == "" {
		return Host{}, errors.New("empty host")
	}
	var h Host
	name := s
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		h.User, name = s[:i], s[i+1:]
		if !userName.MatchString(h.User) {
			return Host{}, fmt.Errorf("host %q: invalid user name %q", s, h.User)
		}
	}
	if !validName(name) {
		return Host{}, fmt.Errorf("host %q: want [user@]host with a host name or IP address", s)
	}
	h.Name = name
	return h, nil
}

// validName reports whether name is a host name or an IP address.
func validName(name string) bool {
	if strings.Contains(name, ":") {
		ip := net.ParseIP(name)
		return ip != nil && !strings.Contains(name, "%")
	}
	return hostName.MatchString(name) && !strings.Contains(name, "..")
}

// ParseHosts checks the values of every -H: each may be a comma-separated
// list. The order is kept and repeats are dropped.
func ParseHosts(values []string) ([]Host, error) {
	var hosts []Host
	seen := map[Host]bool{}
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			h, err := ParseHost(s)
			if err != nil {
				return nil, err
			}
			if !seen[h] {
				seen[h] = true
				hosts = append(hosts, h)
			}
		}
	}
	return hosts, nil
}

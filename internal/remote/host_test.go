package remote

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestParseHost(t *testing.T) {
	for _, s := range []string{"host1", "root@192.0.2.1", "web-1.example.com", "::1", "op_er@2001:db8::1", "a@b@c"} {
		h, err := ParseHost(s)
		if s == "a@b@c" {
			if err == nil {
				t.Errorf("%q: accepted as %+v", s, h)
			}
			continue
		}
		if err != nil || h.String() != s {
			t.Errorf("%q: %+v, %v", s, h, err)
		}
	}
	for _, s := range []string{"", " ", "host 1", "-oProxyCommand=sh", "root@-oProxyCommand=x", "-H", "@host",
		"host\n", "ssh://host", "host:22", "a..b", "-", "host.", ".host", "user name@h", "ROOT@h", "fe80::1%eth0", "h;id", "$(id)"} {
		if h, err := ParseHost(s); err == nil {
			t.Errorf("%q: accepted as %+v", s, h)
		}
	}
}

func TestParseHosts(t *testing.T) {
	got, err := ParseHosts([]string{"h1,root@h2", "h1", "h3"})
	want := []Host{{Name: "h1"}, {User: "root", Name: "h2"}, {Name: "h3"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	for _, v := range []string{"h1,", ",h1", "h1,,h2", "h1, h2"} {
		if _, err := ParseHosts([]string{v}); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

// The destination always follows "--", after appctl's own options.
func TestCommandArgv(t *testing.T) {
	cmd := Dialer{SSH: []string{"/usr/bin/ssh", "-F", "cfg"}}.Command(context.Background(), Host{User: "root", Name: "h"}, "appctl", "status")
	got := strings.Join(cmd.Args, " ")
	want := "/usr/bin/ssh -F cfg -xaT -o BatchMode=yes -o ConnectTimeout=10 -- root@h appctl status"
	if got != want {
		t.Fatalf("argv %q, want %q", got, want)
	}
}

func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"h", "root@h", "::1", "-oX", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHost(s)
		if err != nil {
			return
		}
		if h.String() != s || strings.HasPrefix(s, "-") || strings.ContainsAny(s, " \t\n\r\x00'\"$;|&`\\/,=") {
			t.Fatalf("%q accepted as %+v", s, h)
		}
	})
}

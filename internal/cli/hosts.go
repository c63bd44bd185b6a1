package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/unitkit/unitkit/internal/remote"
)

// hostHelp is -H's help text.
const hostHelp = "operate the service on [user@]host instead, through ssh (may be repeated or a comma-separated list)"

// notRemote are the verbs -H does not take: import reads files of this
// machine, and the others are run by systemd on the host itself.
var notRemote = map[string]bool{"import": true, "persist": true, "autoscaler": true, "backoff": true}

// validateHosts parses the -H values and checks that the verb takes them:
// every verb but those in notRemote takes one host, and status, logs and
// the verbs that change something take several (top takes one).
func (o *options) validateHosts(cmd *cobra.Command) error {
	hosts, err := remote.ParseHosts(o.hostFlags)
	if err != nil {
		return usageError(fmt.Errorf("-H: %w", err))
	}
	if len(hosts) == 0 {
		return nil
	}
	if notRemote[cmd.Name()] {
		return usageError(fmt.Errorf("%s does not take -H; run it on the host itself", cmd.Name()))
	}
	if len(hosts) > 1 && cmd.Name() == "top" {
		return usageError(errors.New("top takes one -H; for several hosts use status"))
	}
	o.hosts = hosts
	return nil
}

// remoteArgs is the command line that runs cmd, as parsed here, with the
// remote host's appctl: the service, the verb, the flags given (as
// --name=value) with extra, then "--" and the arguments.
func (o *options) remoteArgs(cmd *cobra.Command, extra ...string) []string {
	a := []string{commandName(), "--app=" + o.app}
	a = append(a, strings.Fields(cmd.CommandPath())[1:]...)
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if f.Name != "host" && f.Name != "app" {
			a = append(a, "--"+f.Name+"="+f.Value.String())
		}
	})
	a = append(a, extra...)
	return append(append(a, "--"), cmd.Flags().Args()...)
}

// onHosts runs cmd on the -H hosts: status as one table, logs
// interleaved, every other verb on each host in turn, stopping at the
// first that fails.
func (o *options) onHosts(cmd *cobra.Command) error {
	if len(o.hosts) > 1 && cmd.Name() == "status" {
		return o.statusOnHosts(cmd)
	}
	if len(o.hosts) > 1 && cmd.Name() == "logs" {
		return o.logsOnHosts(cmd)
	}
	argv := o.remoteArgs(cmd)
	for _, h := range o.hosts {
		if len(o.hosts) > 1 {
			fmt.Fprintf(o.stdout, "%s:\n", h)
		}
		err := o.sys.run(cmd.Context(), h, argv, o.stdout, prefixed(o.stderr, h))
		if cmd.Name() == "logs" && cmd.Context().Err() != nil {
			return nil // Ctrl-C while following, as without -H
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// hostStatusJSON is one host's entry in status --json with several hosts:
// the host, then its status object, or the error that kept it from us.
type hostStatusJSON struct {
	Host  string `json:"host"`
	Error string `json:"error,omitempty"`
	*statusJSON
}

// statusOnHosts asks every host for status --json, one after the other,
// and prints them as one table with a HOST column (or a JSON array). A
// host that fails is reported and the others are still shown.
func (o *options) statusOnHosts(cmd *cobra.Command) error {
	argv := o.remoteArgs(cmd, "--json")
	var all []hostStatusJSON
	var failed []string
	for _, h := range o.hosts {
		var out bytes.Buffer
		err := o.sys.run(cmd.Context(), h, argv, &out, prefixed(o.stderr, h))
		var st statusJSON
		if err == nil {
			if err = json.Unmarshal(out.Bytes(), &st); err != nil {
				err = fmt.Errorf("%s: reading its status: %w", h, err)
			}
		}
		if err != nil {
			all = append(all, hostStatusJSON{Host: h.String(), Error: err.Error()})
			failed = append(failed, err.Error())
			continue
		}
		all = append(all, hostStatusJSON{Host: h.String(), statusJSON: &st})
	}
	asJSON, _ := cmd.Flags().GetBool("json")
	var err error
	if asJSON {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(all)
	} else {
		err = writeHostsTable(o.stdout, all)
	}
	if err == nil && len(failed) > 0 {
		err = errors.New(strings.Join(failed, "; "))
	}
	return err
}

// writeHostsTable prints the status of several hosts as one table: per
// host its socket, then its instances, then a summary line per host.
func writeHostsTable(w io.Writer, all []hostStatusJSON) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tUNIT\tSTATE\tPID\tUPTIME\tRESTARTS\tCPU%\tRSS\tFDS\tBOOT\tSTATUS")
	for _, hs := range all {
		if hs.statusJSON == nil {
			fmt.Fprintf(tw, "%s\t-\tunknown\t-\t-\t-\t-\t-\t-\t-\t%s\n", hs.Host, hs.Error)
			continue
		}
		s := hs.Socket
		fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t%s queued %d/%d\n", hs.Host, s.Unit, state(s.State, s.SubState),
			strings.Join(s.Listen, " "), s.Queued, s.Backlog)
		for _, in := range hs.Instances {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\n", hs.Host,
				strings.TrimSuffix(in.Unit, ".service"), instanceState(in), pid(in.PID),
				uptime(in.UptimeSec), restarts(in), in.CPUPercent, mib(in.RSSBytes), fds(in.FDs), yesNo(in.Enabled), in.Status)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, hs := range all {
		if hs.statusJSON == nil {
			continue
		}
		sm := hs.Summary
		if _, err := fmt.Fprintf(w, "%s: %d instances: %d running, %d starting, %d failed; %d start at boot; %s resident\n",
			hs.Host, sm.Instances, sm.Running, sm.Starting, sm.Failed, sm.Enabled, mib(sm.RSSBytes)); err != nil {
			return err
		}
	}
	return nil
}

// prefixed returns a writer that starts every line written to w with
// "host: ", so that each message names the host it came from. Writes are
// whole calls under a lock, as several hosts may write at once.
// lockedWriter serialises the writes of several goroutines to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func prefixed(w io.Writer, h remote.Host) io.Writer {
	return &prefixWriter{w: w, prefix: h.String() + ": "}
}

type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	mid    bool // within a line
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []byte
	for _, c := range b {
		if !p.mid {
			out = append(out, p.prefix...)
			p.mid = true
		}
		out = append(out, c)
		if c == '\n' {
			p.mid = false
		}
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

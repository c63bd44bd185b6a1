package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkScript makes wrk send POSTs like internal/loadtest, so that a server
// cannot answer either generator from a different path.
const wrkScript = "/opt/bench/post.lua"

// wrkResult is what one wrk run reported.
type wrkResult struct {
	rps    float64
	p99    float64 // ms
	errors int64   // socket errors and non-2xx answers
	cpu    float64 // CPU seconds wrk used
}

// haveWrk installs the POST script into the sandbox and reports whether
// Debian's wrk can run there.
func (b *bench) haveWrk(ctx context.Context) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk not found (the second, independent load generator): apt-get install wrk, or run with -wrk=false")
	}
	return b.s.WriteFile(wrkScript, []byte("wrk.method = \"POST\"\n"), 0o644)
}

// wrk runs Debian's wrk inside the sandbox's network for o.duration with
// o.clients connections, keep-alive or a new connection per request.
func (b *bench) wrk(ctx context.Context, url string, keepAlive bool) (wrkResult, error) {
	args := []string{"wrk", "-t", "2", "-c", strconv.Itoa(b.o.clients), "-d", fmt.Sprintf("%ds", max(1, int(b.o.duration.Round(time.Second).Seconds()))),
		"--latency", "--timeout", "10s", "-s", wrkScript}
	if !keepAlive {
		args = append(args, "-H", "Connection: close")
	}
	cmd := b.s.Command(ctx, append(args, url+"/")...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return r, err
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = (time.Duration(ru.Utime.Nano()) + time.Duration(ru.Stime.Nano())).Seconds()
	}
	return r, nil
}

var (
	wrkRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP99    = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)\b`)
	wrkSocket = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads wrk's report.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk printed no Requests/sec:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkP99.FindStringSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		r.p99 = v * map[string]float64{"us": 0.001, "ms": 1, "s": 1000}[m[2]]
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.errors += n
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errors += n
	}
	return r, nil
}

// usage is what the serving processes spent over a run.
type usage struct {
	ctxsw int64         // voluntary and involuntary context switches of every thread
	cpu   time.Duration // user and system CPU time
}

// serverUsage reads the context switches and CPU time of the given
// processes in the sandbox, all their threads counted: a thread that sleeps
// in epoll_wait and is woken counts one switch.
func (b *bench) serverUsage(ctx context.Context, pids []string) (usage, error) {
	var status, stat []string
	for _, p := range pids {
		status, stat = append(status, "/proc/"+p+"/task/*/status"), append(stat, "/proc/"+p+"/stat")
	}
	// utime and stime are fields 14 and 15 of stat, 12 and 13 after the
	// command name, which ends the first ") ".
	script := "cat " + strings.Join(status, " ") + " 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s+0}'; " +
		"cat " + strings.Join(stat, " ") + " 2>/dev/null | sed 's/.*) //' | awk '{t += $12 + $13} END {print t+0}'; getconf CLK_TCK"
	out, err := b.s.Run(ctx, "sh", "-c", script)
	if err != nil {
		return usage{}, err
	}
	f := strings.Fields(out)
	if len(f) != 3 {
		return usage{}, fmt.Errorf("reading the servers' /proc: %q", out)
	}
	var u usage
	var ticks, hz int64
	u.ctxsw, err = strconv.ParseInt(f[0], 10, 64)
	if err == nil {
		ticks, err = strconv.ParseInt(f[1], 10, 64)
	}
	if err == nil {
		hz, err = strconv.ParseInt(f[2], 10, 64)
	}
	if err != nil || hz <= 0 {
		return usage{}, fmt.Errorf("reading the servers' /proc: %q: %v", out, err)
	}
	u.cpu = time.Duration(ticks) * time.Second / time.Duration(hz)
	return u, nil
}

// idleTicks reads the machine's idle and total CPU time from /proc/stat,
// in clock ticks: the sandbox shares this kernel.
func idleTicks() (idle, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for k, v := range f[1:min(len(f), 9)] { // user … steal; guest is counted in user already
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		if k == 3 || k == 4 { // idle, iowait
			idle += n
		}
		total += n
	}
	return idle, total, nil
}

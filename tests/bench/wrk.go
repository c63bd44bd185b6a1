package main

import (
	"context"
	"fmt"
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

// ctxSwitches sums the voluntary and involuntary context switches of every
// thread of the given processes in the sandbox: a thread that sleeps in
// epoll_wait and is woken counts one.
func (b *bench) ctxSwitches(ctx context.Context, pids []string) (int64, error) {
	var paths []string
	for _, p := range pids {
		paths = append(paths, "/proc/"+p+"/task/*/status")
	}
	out, err := b.s.Run(ctx, "sh", "-c", "cat "+strings.Join(paths, " ")+" 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s+0}'")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(out), 10, 64)
}

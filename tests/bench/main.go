// Command bench measures unitkit in a real systemd sandbox and prints a
// markdown table, next to the same server run as one plain process, and
// writes the figures as JSON with a description of the machine. Run it
// through make bench, as root.
//
// Every figure is the median of several runs, shown with their range. The
// load comes from package loadtest (closed loop, a new connection per
// request or keep-alive), run from this process into the sandbox's
// network; it shares the machine's CPUs with the server, as a load
// generator on the same host would.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/unitkit/unitkit/tests/install"
	"github.com/unitkit/unitkit/tests/sandbox"
)

// options are the command-line settings.
type options struct {
	runs     int
	duration time.Duration
	clients  int
	bin      string
	units    string
	out      string
	pm2      bool
	wrk      bool
	only     map[string]bool // steps to run; empty runs them all
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 3, "runs per figure (the median is reported)")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of each load run")
	flag.IntVar(&o.clients, "clients", 32, "concurrent clients of each load run")
	flag.StringVar(&o.bin, "bin", "bin", "directory with the built commands")
	flag.StringVar(&o.units, "units", "unit", "directory with the unit files")
	flag.StringVar(&o.out, "out", "bench/results", "directory for the JSON results")
	flag.BoolVar(&o.pm2, "pm2", true, "also measure PM2 "+pm2Version+" (installed from npm into the user cache directory)")
	flag.BoolVar(&o.wrk, "wrk", true, "also measure with Debian's wrk, a load generator written elsewhere")
	only := flag.String("only", "", "run only these steps, comma-separated, in the bench's order: "+strings.Join(stepNames(), ",")+
		" (scale and crash compare with PM2 only when pm2 runs too; againstpm2 and express need pm2)")
	flag.Parse()
	var err error
	if o.only, err = parseOnly(*only); err != nil || flag.NArg() > 0 || o.runs < 1 || o.duration < 100*time.Millisecond || o.clients < 1 {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		fmt.Fprintln(os.Stderr, "bench: usage: bench [-runs N>=1] [-duration D>=100ms] [-clients N>=1] [-bin DIR] [-units DIR] [-out DIR] [-only STEP,...]")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if err := sandbox.Prerequisites(); err != nil {
		return fmt.Errorf("%w (try: sudo make bench)", err)
	}
	ctx := context.Background()
	pm2Bin := ""
	if o.pm2 {
		cache, err := os.UserCacheDir()
		if err != nil {
			return err
		}
		if pm2Bin, err = installPM2(filepath.Join(cache, "unitkit-bench", "pm2")); err != nil {
			return err
		}
	}
	s, err := sandbox.Boot(ctx, "unitkit-bench")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := install.Herd(ctx, s, o.bin, o.units); err != nil {
		return err
	}
	sd, err := dialSystemd(ctx, s)
	if err != nil {
		return err
	}
	defer sd.Close()
	b := &bench{s: s, o: o, sd: sd, pm2Bin: pm2Bin, useWrk: o.wrk, pm2Ref: map[string]float64{}}
	if err := b.all(ctx); err != nil {
		return err
	}
	rep := report{Date: time.Now().UTC().Format(time.RFC3339), Machine: describe(ctx, s), Options: o.String(), Rows: b.rows}
	fmt.Print(rep.markdown())
	return rep.save(o.out)
}

func (o options) String() string {
	s := fmt.Sprintf("%d runs per figure, %s per load run, %d clients", o.runs, o.duration, o.clients)
	if len(o.only) > 0 {
		var steps []string
		for _, name := range stepNames() {
			if o.only[name] {
				steps = append(steps, name)
			}
		}
		s += ", only " + strings.Join(steps, ",")
	}
	return s
}

// parseOnly reads the -only list of step names.
func parseOnly(list string) (map[string]bool, error) {
	only := map[string]bool{}
	if list == "" {
		return only, nil
	}
	for _, name := range strings.Split(list, ",") {
		if !slices.Contains(stepNames(), name) {
			return nil, fmt.Errorf("-only: no step %q (steps: %s)", name, strings.Join(stepNames(), ","))
		}
		only[name] = true
	}
	return only, nil
}

// selected says whether the step called name runs.
func (o options) selected(name string) bool { return len(o.only) == 0 || o.only[name] }

// save writes the report as bench/results/<date>.json.
func (r report) save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, r.Date[:10]+".json")
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", path)
	return nil
}

// describe records what the figures were measured on.
func describe(ctx context.Context, s *sandbox.Sandbox) map[string]string {
	m := map[string]string{}
	for key, args := range map[string][]string{
		"kernel":  {"uname", "-r"},
		"cpus":    {"nproc"},
		"systemd": {"sh", "-c", "systemctl --version | head -1"},
		"cpu":     {"sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"},
		"memory":  {"sh", "-c", "grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2-"},
	} {
		out, _ := s.Run(ctx, args...)
		m[key] = strings.TrimSpace(out)
	}
	return m
}

package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/unitkit/unitkit/internal/herd"
)

func (o *options) topCmd() *cobra.Command {
	var (
		interval   time.Duration
		iterations int
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show status live, refreshed every second (q or Ctrl-C quits)",
		Long: `top shows the status table and refreshes it, with the CPU each instance used
since the previous refresh. On a terminal it redraws in place and quits on q
or Ctrl-C; otherwise it prints a table per refresh.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return usageError(fmt.Errorf("--interval %s: want at least 100ms", interval))
			}
			if iterations < 0 {
				return usageError(fmt.Errorf("--iterations %d: want 0 (until quit) or more", iterations))
			}
			return o.withHerd(cmd, func(h *herd.Herd) error {
				return o.top(cmd.Context(), h, interval, iterations)
			})
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between refreshes")
	cmd.Flags().VarP(decimalFlag(&iterations, 0), "iterations", "n", "stop after this many refreshes (0: until quit)")
	return cmd
}

// top refreshes until ctx ends, q is pressed, or iterations are done.
func (o *options) top(ctx context.Context, h *herd.Herd, interval time.Duration, iterations int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	live := false
	if f, ok := o.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) && term.IsTerminal(int(os.Stdin.Fd())) {
		restore, err := rawInput(cancel)
		if err == nil {
			defer restore()
			live = true
		}
	}
	var prev *herd.Snapshot
	for i := 0; iterations == 0 || i < iterations; i++ {
		snap, err := h.Snapshot(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		as, err := readAutoscale(ctx, h)
		if err != nil {
			return err
		}
		if err := o.drawTop(snap, prev, live, as); err != nil {
			return err
		}
		prev = &snap
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
	return nil
}

func (o *options) drawTop(snap herd.Snapshot, prev *herd.Snapshot, live bool, as autoscaleJSON) error {
	now := cpuNow{}
	if prev != nil {
		wall := snap.Time.Sub(prev.Time).Seconds()
		before := map[string]herd.Instance{}
		for _, in := range prev.Instances {
			before[in.Unit] = in
		}
		for _, in := range snap.Instances {
			if b, ok := before[in.Unit]; ok && b.PID == in.PID && wall > 0 {
				now[in.Unit] = 100 * (in.CPUTime - b.CPUTime) / wall
			}
		}
	}
	w := o.stdout
	if live {
		fmt.Fprint(w, "\x1b[H\x1b[2J") // home, clear
		fmt.Fprintf(w, "appctl top: %s, %s (q to quit)\r\n", snap.App, snap.Time.Format("15:04:05"))
		w = crlf{w}
	} else {
		fmt.Fprintf(w, "--- %s %s\n", snap.App, snap.Time.Format(time.RFC3339))
	}
	return writeTable(w, snap, now, as)
}

// rawInput puts the terminal in raw mode and calls quit on q, Q or Ctrl-C.
func rawInput(quit func()) (restore func(), err error) {
	fd := int(os.Stdin.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := os.Stdin.Read(buf); err != nil {
				return
			}
			if buf[0] == 'q' || buf[0] == 'Q' || buf[0] == 3 {
				quit()
				return
			}
		}
	}()
	return func() { _ = term.Restore(fd, old) }, nil
}

// crlf turns \n into \r\n, which a terminal in raw mode needs.
type crlf struct{ w io.Writer }

func (c crlf) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+8)
	for _, b := range p {
		if b == '\n' {
			out = append(out, '\r')
		}
		out = append(out, b)
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Package journal reads the journal records of a unitkit service through
// journalctl and formats them for appctl logs; WatchdogKills counts the
// instances' watchdog failures for appctl metrics.
//
// A service NAME runs as the units NAME.socket and NAME@1.service …
// NAME@N.service. Its records are selected with journalctl matches that do
// not depend on which instances exist when journalctl starts, so that
// following (-f) picks up instances started later:
//
//	_SYSTEMD_SLICE=system-NAME.slice + _SYSTEMD_UNIT=NAME.socket + _PID=1
//
// (every instance of the template runs in that slice; PID 1 logs the
// manager's messages about units, carrying UNIT=NAME@3.service). The records
// are then filtered here: a record is kept when its _SYSTEMD_UNIT, or the
// UNIT of a message from PID 1, is NAME.socket or NAME@<instance>.service.
// journalctl emits records in time order, so instances come interleaved.
//
// # Text output
//
// One line per record:
//
//	15:04:05.000 app@3    message
//
// with the local time, the instance ("socket" for the socket unit) padded to
// a fixed width, and the message with trailing newlines removed and other
// control characters except tab shown as escapes (\n, \x1b, \u009b). With
// Options.Color the instance gets a stable colour, and messages of priority
// err or worse are red, warnings yellow.
//
// # JSON output
//
// With Options.JSON each record is one JSON object on its own line. This
// schema is stable; these are exactly its keys:
//
//	time      string  the record's time, RFC 3339 with fraction, in UTC
//	                  ("" if journalctl gave none)
//	unit      string  the unit, e.g. "app@3.service" or "app.socket"
//	instance  string  the instance, e.g. "3"; "" for the socket unit
//	priority  number  syslog priority 0 (emerg) … 7 (debug); 6 if missing
//	message   string  the message as logged; bytes that are not UTF-8
//	                  become U+FFFD
//	pid       number  the logging process (1 for systemd's own messages
//	                  about the unit); 0 if missing
//	fields    object  string to string: the custom fields the record carries
//	                  (e.g. INSTANCE, REQUEST_ID), that is every field not
//	                  starting with "_" other than MESSAGE, PRIORITY,
//	                  SYSLOG_IDENTIFIER, SYSLOG_FACILITY, SYSLOG_TIMESTAMP,
//	                  CODE_FILE, CODE_LINE, CODE_FUNC, UNIT, MESSAGE_ID and
//	                  INVOCATION_ID; {} when there are none. A field logged
//	                  more than once in a record keeps its last value.
package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options select and format records.
type Options struct {
	App      string // service name, e.g. "app"; already validated by the caller (matches ^[a-zA-Z0-9_.:-]+$)
	Instance string // "" for all; else an instance name like "3"
	Lines    int    // show the last N records (0 = none when following); negative means all
	Since    string // passed to journalctl --since as is, when not empty
	Follow   bool   // keep running and show new records as they arrive
	JSON     bool   // one JSON object per line (the schema in the package doc), no colour
	Color    bool   // colourise the instance prefix and priority (caller decides: terminal and not JSON)

	// Stderr, when not nil, receives what journalctl writes to its standard
	// error as it is written: notices such as its hint that an unprivileged
	// user sees only their own records (journalctl still succeeds then).
	// The last line is also used in the error when journalctl fails.
	Stderr io.Writer
}

// errNotFound is returned by Stream when there is no journalctl to run.
var errNotFound = errors.New("journalctl not found: install systemd")

// permissionHint is added to a journalctl failure that looks like missing
// access to the system journal.
const permissionHint = "reading the system journal needs root or membership in the systemd-journal group"

// Command returns a journalctl invocation with the arguments argv, killed
// when ctx is done.
func Command(ctx context.Context, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "journalctl", argv...)
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// common returns the arguments of every invocation: JSON output, and
// --all, which keeps fields longer than 4096 bytes that -o json otherwise
// prints as null. The forms with "=" are used because journalctl's -n
// takes an optional argument.
func common() []string { return []string{"--no-pager", "--output=json", "--all"} }

// args returns journalctl's arguments to read o's records from the oldest
// on: every record (o.Lines < 0), or none before following (o.Lines == 0).
func args(o Options) []string {
	a := common()
	if o.Lines < 0 {
		a = append(a, "--lines=all")
	} else {
		a = append(a, "--lines="+strconv.Itoa(o.Lines))
	}
	if o.Since != "" {
		a = append(a, "--since="+o.Since)
	}
	if o.Follow {
		a = append(a, "--follow")
	}
	return append(a, matches(o)...)
}

// tailArgs returns journalctl's arguments to read the records that may be
// o's newest first, as far back as o.Since. journalctl's own --lines counts
// records before Stream narrows them to the service (the matches take every
// record of PID 1), so the count is kept here instead.
func tailArgs(o Options) []string {
	a := append(common(), "--reverse")
	if o.Since != "" {
		a = append(a, "--since="+o.Since)
	}
	return append(a, matches(o)...)
}

// followArgs returns journalctl's arguments to follow o's records that
// come after cursor; with no cursor (the journal had no record that may be
// o's), from now on.
func followArgs(o Options, cursor string) []string {
	if cursor == "" {
		return args(Options{App: o.App, Instance: o.Instance, Follow: true})
	}
	a := append(common(), "--lines=all", "--after-cursor="+cursor, "--follow")
	return append(a, matches(o)...)
}

// matches returns the journalctl matches for o's records, OR-ed with "+".
// Fields that differ within one term are AND-ed by journalctl.
func matches(o Options) []string {
	if o.Instance != "" {
		unit := instanceUnit(o.App, o.Instance)
		return []string{"_SYSTEMD_UNIT=" + unit, "+", "_PID=1", "UNIT=" + unit}
	}
	return []string{
		"_SYSTEMD_SLICE=" + sliceName(o.App), "+",
		"_SYSTEMD_UNIT=" + socketUnit(o.App), "+",
		"_PID=1",
	}
}

// Stream runs journalctl for o and writes the service's records to w,
// formatted as o asks, until journalctl ends or ctx is done. A cancelled
// ctx (Ctrl-C while following) is not an error.
//
// The last o.Lines records are found reading backwards until that many of
// the service's are found; following then goes on after the newest record
// journalctl had, so that no record is shown twice or missed in between.
func Stream(ctx context.Context, w io.Writer, o Options) error {
	if o.Lines <= 0 {
		return run(ctx, args(o), o, func(r io.Reader) (bool, error) {
			return false, copyRecords(w, r, o)
		})
	}
	cursor, err := tail(ctx, w, o)
	if err != nil || !o.Follow || ctx.Err() != nil {
		return err
	}
	return run(ctx, followArgs(o, cursor), o, func(r io.Reader) (bool, error) {
		return false, copyRecords(w, r, o)
	})
}

// tail writes o's last o.Lines records to w, oldest first, and returns the
// cursor of the newest record journalctl gave ("" if none), whether it is
// one of o's or not.
func tail(ctx context.Context, w io.Writer, o Options) (string, error) {
	var (
		newest []entry // newest first
		cursor string
	)
	err := run(ctx, tailArgs(o), o, func(r io.Reader) (bool, error) {
		br := bufio.NewReaderSize(r, 64<<10)
		for len(newest) < o.Lines {
			line, readErr := br.ReadBytes('\n')
			rec, err := decodeLine(line)
			if err != nil {
				return false, err
			}
			if rec != nil && cursor == "" {
				cursor = str(rec, "__CURSOR")
			}
			if unit, instance, ok := filter(rec, o); rec != nil && ok {
				newest = append(newest, decode(rec, unit, instance))
			}
			if readErr == io.EOF {
				return false, nil
			}
			if readErr != nil {
				return false, fmt.Errorf("reading journalctl output: %w", readErr)
			}
		}
		return true, nil
	})
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriter(w)
	for i := len(newest) - 1; i >= 0; i-- {
		if err := writeEntry(bw, newest[i], o); err != nil {
			return "", err
		}
	}
	if err := bw.Flush(); err != nil {
		return "", fmt.Errorf("writing records: %w", err)
	}
	return cursor, nil
}

// run runs journalctl with argv and hands its standard output to consume,
// which reports whether it stopped reading on purpose (journalctl is then
// ended, and that is no error). journalctl's standard error goes to
// o.Stderr, and its last line into the error when journalctl fails.
func run(ctx context.Context, argv []string, o Options, consume func(io.Reader) (bool, error)) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := Command(runCtx, argv)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("running journalctl: %w", err)
	}
	stderr := &tailWriter{forward: o.Stderr}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return errNotFound
		}
		return fmt.Errorf("running journalctl: %w", err)
	}
	stopped, consumeErr := consume(stdout)
	if stopped || consumeErr != nil {
		cancel() // stop journalctl: nobody reads its output any more
	}
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return nil
	case consumeErr != nil:
		return consumeErr
	case stopped:
		return nil
	default:
		return exitError(waitErr, stderr.lastLine())
	}
}

// exitError turns the result of waiting for journalctl into Stream's error:
// nil for success and for an interrupt (Ctrl-C reaches journalctl too, and
// may end it before the caller's context is cancelled), else an error with
// the last line journalctl wrote to standard error.
func exitError(err error, last string) error {
	if err == nil || interrupted(err) {
		return nil
	}
	if last == "" {
		return fmt.Errorf("journalctl failed: %w", err)
	}
	if strings.Contains(strings.ToLower(last), "permission") {
		return fmt.Errorf("journalctl failed: %s (%s): %w", last, permissionHint, err)
	}
	return fmt.Errorf("journalctl failed: %s: %w", last, err)
}

// interrupted reports whether err says journalctl was ended by SIGINT.
func interrupted(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState == nil {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGINT
}

// copyRecords decodes journalctl's JSON output from r, one record a line,
// and writes the records that pass the filter to w. Output is flushed
// whenever no more input is waiting, so that following shows records at
// once.
func copyRecords(w io.Writer, r io.Reader, o Options) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriter(w)
	for {
		line, readErr := br.ReadBytes('\n')
		if err := formatLine(bw, line, o); err != nil {
			return err
		}
		if br.Buffered() == 0 || readErr != nil {
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("writing records: %w", err)
			}
		}
		if readErr == io.EOF {
			return nil
		}
		if readErr != nil {
			return fmt.Errorf("reading journalctl output: %w", readErr)
		}
	}
}

// tailWriter keeps the end of what is written to it, to report journalctl's
// last error message, and passes everything on to forward if not nil.
type tailWriter struct {
	forward io.Writer
	tail    []byte
}

// tailSize is how much of journalctl's standard error is kept.
const tailSize = 4096

// Write implements io.Writer. Errors of the forward writer are ignored:
// they must not stop journalctl.
func (t *tailWriter) Write(p []byte) (int, error) {
	if t.forward != nil {
		_, _ = t.forward.Write(p)
	}
	t.tail = append(t.tail, p...)
	if len(t.tail) > tailSize {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-tailSize:]...)
	}
	return len(p), nil
}

// lastLine returns the last line written that is not blank, trimmed.
func (t *tailWriter) lastLine() string {
	lines := strings.Split(string(t.tail), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" {
			return sanitize(s)
		}
	}
	return ""
}

package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// unitFailureResult is the MESSAGE_ID of systemd's "Failed with result"
// record, which carries the result in UNIT_RESULT (sd-messages.h:
// SD_MESSAGE_UNIT_FAILURE_RESULT).
const unitFailureResult = "d9b373ed55a64feb8242e02dbe79a49c"

// restrictedHints are what journalctl says on standard error, while still
// succeeding, when it can read only the caller's own records.
var restrictedHints = []string{
	"not seeing messages from other users and the system",
	"insufficient permissions",
}

// WatchdogKills counts, per instance unit of service app (e.g.
// "app@3.service"), how often systemd failed that unit with result
// 'watchdog' since the machine booted: PID 1 logs one structured record
// with UNIT_RESULT=watchdog each time. Units without such a record are not
// in the map. Reading the system journal needs root or membership in the
// systemd-journal group; without it the count would silently be zero, so
// that is an error.
func WatchdogKills(ctx context.Context, app string) (map[string]int, error) {
	cmd := exec.CommandContext(ctx, "journalctl", watchdogArgs()...)
	cmd.WaitDelay = 2 * time.Second
	stderr := &tailWriter{}
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if errors.Is(err, exec.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("count watchdog kills: %w", exitError(err, stderr.lastLine()))
	}
	if restricted(string(stderr.tail)) {
		return nil, fmt.Errorf("count watchdog kills: journalctl sees only this user's records: %s", permissionHint)
	}
	kills, err := countKills(bytes.NewReader(out), app)
	if err != nil {
		return nil, fmt.Errorf("count watchdog kills: %w", err)
	}
	return kills, nil
}

// watchdogArgs returns journalctl's arguments for the records of units
// failed by the watchdog during this boot. The matches are AND-ed; the
// journal's field index makes this cheap however large the journal is.
func watchdogArgs() []string {
	return []string{
		"--no-pager", "--boot", "--output=json", "--output-fields=UNIT",
		"_PID=1", "MESSAGE_ID=" + unitFailureResult, "UNIT_RESULT=watchdog",
	}
}

// restricted reports whether journalctl's standard error says it could not
// read the whole system journal.
func restricted(stderr string) bool {
	for _, h := range restrictedHints {
		if strings.Contains(stderr, h) {
			return true
		}
	}
	return false
}

// countKills reads journalctl's JSON records from r and counts those whose
// UNIT is an instance of app. Lines that are not JSON objects (such as
// "-- No entries --") are skipped.
func countKills(r io.Reader, app string) (map[string]int, error) {
	kills := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("decode journalctl output: %w", err)
		}
		if unit, inst, ok := matchUnit(str(rec, "UNIT"), Options{App: app}); ok && inst != "" {
			kills[unit]++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read journalctl output: %w", err)
	}
	return kills, nil
}

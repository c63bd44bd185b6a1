// Package memrestart counts the restarts each instance made because its
// memory stayed above its limit: the activation library drains the
// instance and it exits with activation.ExitMemoryLimit (75), which
// appctl backoff, the unit's ExecStopPost=, records here. appctl status
// and appctl metrics read the counts. They live under /run, so a reboot
// forgets them, like systemd's own restart counter.
package memrestart

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/unitkit/unitkit/internal/atomicfile"
)

// ExitStatus is the exit status of an instance that stopped for its
// memory limit (activation.ExitMemoryLimit, sysexits' EX_TEMPFAIL).
const ExitStatus = "75"

// DefaultDir is where the counts live, readable by everyone so that
// operators' appctl status shows them.
const DefaultDir = "/run/appctl/memory"

// Record is the memory restarts of one instance since boot.
type Record struct {
	Unit  string    `json:"unit"`
	Count int       `json:"count"`
	Last  time.Time `json:"last"`
}

// Store keeps one record per instance in a directory.
type Store struct{ Dir string }

func (s Store) path(unit string) string { return filepath.Join(s.Dir, unit+".json") }

// Add counts one memory restart of unit at at and returns the new record.
// Only the instance's own ExecStopPost= writes its record, and systemd
// runs one at a time per unit.
func (s Store) Add(unit string, at time.Time) (Record, error) {
	r := Record{Unit: unit}
	if _, err := atomicfile.ReadJSON(s.path(unit), &r); err != nil {
		r = Record{Unit: unit} // an unreadable count starts again
	}
	r.Count++
	r.Last = at
	if err := atomicfile.WriteJSON(s.path(unit), r); err != nil {
		return r, fmt.Errorf("record the memory restart of %s: %w", unit, err)
	}
	return r, nil
}

// All returns every record by unit; unreadable files are skipped.
func (s Store) All() map[string]Record { return atomicfile.ReadDirJSON[Record](s.Dir) }

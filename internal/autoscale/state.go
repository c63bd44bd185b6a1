package autoscale

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/unitkit/unitkit/internal/atomicfile"
)

// State is what the controller last saw and decided, written after every
// sample for appctl status to show.
type State struct {
	Spec       string    `json:"spec"`
	Setting    string    `json:"setting"`
	Updated    time.Time `json:"updated"`
	Running    int       `json:"running"`
	CPUPercent float64   `json:"cpu_percent_per_instance"`
	Queued     uint64    `json:"queued"`
	Desired    int       `json:"desired"`
	Note       string    `json:"note,omitempty"` // why no decision was made, if none was
	Last       *Decision `json:"last_decision,omitempty"`
	Decisions  int       `json:"decisions"` // resizes since the controller started
}

// StateDir is where the controller of app with setting spec keeps its
// state: the unit's RuntimeDirectory=%p/%i, which systemd removes when the
// controller stops.
func StateDir(app, spec string) string {
	return filepath.Join("/run", app+"-autoscale", spec)
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

// ReadState reads the state in dir; (nil, nil) if the controller has not
// written one yet.
func ReadState(dir string) (*State, error) {
	var st State
	found, err := atomicfile.ReadJSON(statePath(dir), &st)
	if err != nil {
		return nil, fmt.Errorf("read the autoscaler's state: %w", err)
	}
	if !found {
		return nil, nil
	}
	return &st, nil
}

package herd

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// cpuAffinity is what CPUAffinity= holds here: CPU numbers separated by
// single spaces, no ranges.
var cpuAffinity = regexp.MustCompile(`^[0-9]+( [0-9]+)*$`)

// readPlacement reads a placement drop-in strictly: comments, [Service],
// and one CPUAffinity= line, whose CPUs it returns.
func readPlacement(text string) ([]int, error) {
	var cpus []int
	section := false
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "# ") && !strings.ContainsAny(l, "\r\x00"):
		case l == "[Service]" && !section:
			section = true
		case section && cpus == nil && strings.HasPrefix(l, "CPUAffinity="):
			v := strings.TrimPrefix(l, "CPUAffinity=")
			if !cpuAffinity.MatchString(v) {
				return nil, fmt.Errorf("CPUAffinity=%s", v)
			}
			for _, f := range strings.Split(v, " ") {
				n, err := strconv.Atoi(f)
				if err != nil {
					return nil, err
				}
				cpus = append(cpus, n)
			}
		default:
			return nil, fmt.Errorf("stray line %q", l)
		}
	}
	if cpus == nil || !strings.HasSuffix(text, "\n") {
		return nil, errors.New("no CPUAffinity=")
	}
	return cpus, nil
}

// FuzzPlacement places instance i of n on the CPUs of mask and checks the
// drop-in appctl persist writes for it: it reads back as exactly the share,
// a share is never empty (CPUAffinity= with no CPU means every CPU), and
// with no more instances than CPUs the shares cover every CPU once.
func FuzzPlacement(f *testing.F) {
	f.Add(uint16(1), uint16(1), uint64(0b11), "app")
	f.Add(uint16(3), uint16(4), uint64(0b11), "shop")
	f.Add(uint16(2), uint16(3), uint64(0xf0f0), "a:b")
	f.Add(uint16(0), uint16(2), uint64(1), "app")
	f.Add(uint16(1), uint16(0), uint64(0), "app")
	f.Fuzz(func(t *testing.T, i, n uint16, mask uint64, name string) {
		app, err := NewApp(name)
		if err != nil {
			return
		}
		var cpus []int
		for c := range 64 {
			if mask&(1<<c) != 0 {
				cpus = append(cpus, c)
			}
		}
		share := placement(int(i), int(n), cpus)
		text, err := placementText(app, int(i), share)
		if len(share) == 0 {
			if err == nil || i >= 1 && i <= n && len(cpus) > 0 {
				t.Fatalf("placement(%d, %d, %v) = %v; drop-in %q, %v", i, n, cpus, share, text, err)
			}
			return
		}
		got, err := readPlacement(text)
		if err != nil || !slices.Equal(got, share) {
			t.Fatalf("drop-in for %v reads as %v, %v:\n%s", share, got, err, text)
		}
		for _, c := range share {
			if !slices.Contains(cpus, c) {
				t.Fatalf("placement(%d, %d, %v) = %v: CPU %d is not available", i, n, cpus, share, c)
			}
		}
		if i == 1 && int(n) <= len(cpus) {
			var all []int
			for k := 1; k <= int(n); k++ {
				all = append(all, placement(k, int(n), cpus)...)
			}
			if !slices.Equal(all, cpus) {
				t.Fatalf("%d instances on %v get %v", n, cpus, all)
			}
		}
	})
}

// An empty share is refused rather than written as CPUAffinity=, which
// systemd reads as every CPU.
func TestPlacementTextRefusesNoCPU(t *testing.T) {
	app, _ := NewApp("app")
	for _, share := range [][]int{nil, {}, {-1}} {
		if text, err := placementText(app, 1, share); err == nil {
			t.Errorf("placementText(%v) = %q, want an error", share, text)
		}
	}
	if text, err := placementText(app, 2, []int{2, 3}); err != nil || !strings.HasSuffix(text, "[Service]\nCPUAffinity=2 3\n") {
		t.Errorf("placementText([2 3]) = %q, %v", text, err)
	}
}

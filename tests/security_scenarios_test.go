package tests

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// The shipped units pass systemd-analyze verify, and the instance unit's
// exposure is at most 1.5; with the no-network drop-in from contrib it is at
// most 0.6 and the instance still serves the socket.
func TestUnitsAreVerifiedAndSandboxed(t *testing.T) {
	h := newHerd(t)
	out, err := h.s.Run(context.Background(), "systemd-analyze", "verify",
		"/usr/lib/systemd/system/app.socket", "/usr/lib/systemd/system/app@1.service", "/usr/lib/systemd/system/app.target")
	if err != nil || out != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if score := h.exposure(); score > 1.5 {
		t.Errorf("app@1.service exposure %.1f, want at most 1.5", score)
	} else {
		t.Logf("app@1.service exposure %.1f", score)
	}

	h.must(h.s.CopyFile(filepath.Join("..", "contrib", "no-network", "no-network.conf"),
		"/etc/systemd/system/app@.service.d/no-network.conf", 0o644))
	h.systemctl("daemon-reload")
	if score := h.exposure(); score > 0.6 {
		t.Errorf("app@1.service exposure with no-network.conf %.1f, want at most 0.6", score)
	} else {
		t.Logf("app@1.service exposure with no-network.conf %.1f", score)
	}
	h.systemctl("start", "app@1.service", "app@2.service")
	ld := h.load(false)
	ld.Run(4, "/")
	time.Sleep(time.Second)
	r := ld.Stop()
	checkLoad(t, "no-network instances", r, 0)
}

var exposureRE = regexp.MustCompile(`Overall exposure level for app@1\.service: ([0-9.]+)`)

// exposure returns systemd-analyze security's overall exposure level of
// app@1.service.
func (h *herd) exposure() float64 {
	h.t.Helper()
	out, _ := h.s.Run(context.Background(), "systemd-analyze", "security", "--no-pager", "app@1.service")
	m := exposureRE.FindStringSubmatch(out)
	if m == nil {
		h.t.Fatalf("no exposure level in systemd-analyze security output:\n%s", out)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		h.t.Fatal(err)
	}
	return f
}

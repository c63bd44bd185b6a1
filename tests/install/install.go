// Package install puts unitkit's binaries and units into a sandbox the way
// the package does, and contrib/node's app the way its README does, for the
// demo, the benchmarks and the scenarios.
package install

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/unitkit/unitkit/tests/sandbox"
)

// Herd copies every command in bin to /usr/bin and every unit in units to
// /usr/lib/systemd/system, reloads systemd and enables and starts the
// socket.
func Herd(ctx context.Context, s *sandbox.Sandbox, bin, units string) error {
	cmds, err := filepath.Glob(filepath.Join(bin, "*"))
	if err != nil || len(cmds) == 0 {
		return fmt.Errorf("no commands in %s: run make build first", bin)
	}
	for _, c := range cmds {
		if err := s.CopyFile(c, "/usr/bin/"+filepath.Base(c), 0o755); err != nil {
			return err
		}
	}
	files, err := filepath.Glob(filepath.Join(units, "app*"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no unit files in %s", units)
	}
	for _, f := range files {
		if err := s.CopyFile(f, "/usr/lib/systemd/system/"+filepath.Base(f), 0o644); err != nil {
			return err
		}
	}
	if _, err := s.Run(ctx, "systemctl", "daemon-reload"); err != nil {
		return err
	}
	_, err = s.Run(ctx, "systemctl", "enable", "--now", "app.socket", "app.target")
	return err
}

// NodeApp switches the instances to contrib/node's app, the way its README
// says: app.js and the unitkit package it runs on (index.js, preload.js,
// lib/, package.json) from dir to /usr/local/lib/app-node, node.conf as a
// drop-in for app@.service, then a daemon-reload. Running instances keep
// the old program until they are restarted.
func NodeApp(ctx context.Context, s *sandbox.Sandbox, dir string) error {
	lib, err := filepath.Glob(filepath.Join(dir, "lib", "*.js"))
	if err != nil || len(lib) == 0 {
		return fmt.Errorf("no lib/*.js in %s", dir)
	}
	files := []string{"app.js", "index.js", "preload.js", "package.json"}
	for _, f := range lib {
		files = append(files, filepath.Join("lib", filepath.Base(f)))
	}
	for _, f := range files {
		if err := s.CopyFile(filepath.Join(dir, f), "/usr/local/lib/app-node/"+f, 0o644); err != nil {
			return err
		}
	}
	if err := s.CopyFile(filepath.Join(dir, "node.conf"), "/etc/systemd/system/app@.service.d/node.conf", 0o644); err != nil {
		return err
	}
	_, err = s.Run(ctx, "systemctl", "daemon-reload")
	return err
}

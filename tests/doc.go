// Package tests holds the integration scenarios of unitkit: each boots a
// real systemd in a sandbox (package sandbox), installs the real units and
// the real app binary, and checks what the product promises — the socket
// never closes, instances share it, restarts drop nothing, crashes and hangs
// heal — under load.
//
// The scenarios need root; elsewhere they skip with a message saying so.
// Run them with make test.
package tests

// Package herd operates one service run as a herd of socket-activated
// instances — NAME.socket shared by NAME@1.service … NAME@N.service — by
// talking to systemd over D-Bus: it reads the state of the socket and the
// instances (plus /proc for their processes), and scales, reloads,
// restarts, starts and stops them, waiting for systemd's job results (for
// Type=notify instances a start is done once READY=1 arrived). It keeps no
// state of its own; the instance count that survives a reboot is the set
// of instances enabled into NAME.target. appctl is its command line.
package herd

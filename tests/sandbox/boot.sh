#!/bin/sh
# boot.sh NAME STATE — run as PID 1 of fresh pid, mount, uts, ipc, net and
# cgroup namespaces (see sandbox.go). Builds a throwaway root and execs
# systemd.
#
# The root is an overlay of the host's / with an upper layer in STATE, a
# tmpfs the caller mounted for this sandbox (booting again with the same
# STATE is a reboot that keeps every file written), so nothing systemd does at boot
# (systemd-tmpfiles empties /tmp, for one) reaches the host's files. /proc/sys
# and /sys are read-only, as in any container, so the host's kernel settings
# stay as they are; /sys/fs/cgroup is a cgroup2 mount rooted at this
# sandbox's own cgroup, so sandboxes never share cgroup directories.
set -eu
name=$1
state=$2

mount --make-rprivate /
mount --bind "$state" /mnt
mkdir -p /mnt/upper /mnt/work /mnt/root
mount -t overlay overlay -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work /mnt/root
r=/mnt/root

mount -t proc proc "$r/proc"
mount --bind "$r/proc/sys" "$r/proc/sys"
mount -o remount,bind,ro "$r/proc/sys"
mount --rbind /sys "$r/sys"
mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
mount -o remount,bind,ro "$r/sys"
mount --rbind /dev "$r/dev"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"

# The kernel log is the host's: keep it out of the sandbox's journal.
mkdir -p "$r/etc/systemd/journald.conf.d"
printf '[Journal]\nReadKMsg=no\n' >"$r/etc/systemd/journald.conf.d/sandbox.conf"

hostname "$name"
echo "$name" >"$r/etc/hostname"
ip link set lo up

cd "$r"
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot
exec /lib/systemd/systemd --system --unit=basic.target

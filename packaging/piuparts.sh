#!/bin/sh
# piuparts.sh — test the .deb with piuparts, Debian's install, upgrade,
# remove and purge tester, in a minimal Debian chroot (make test-packages).
#
# Usage: packaging/piuparts.sh OLD.deb NEW.deb
#        packaging/piuparts.sh --clean-cache
#
# Two piuparts runs on NEW.deb, each in a fresh chroot unpacked from a cached
# base tarball:
#   install-purge  install, purge with the dependencies still installed,
#                  reinstall, remove, reinstall over the remaining
#                  configuration, purge everything: the system must be as
#                  before, no process left running in the chroot.
#   upgrade        install OLD.deb with apt (from a local repository made
#                  here), upgrade to NEW.deb, purge: the same checks.
# (Given both files at once, piuparts would install them together as one
# set, not one after the other: hence the repository.)
#
# Variables:
#   PIUPARTS_CACHE    where the base tarball is kept (default
#                     ${XDG_CACHE_HOME:-$HOME/.cache}/unitkit/piuparts)
#   PIUPARTS_MAX_AGE  days after which the tarball is made again (default 7;
#                     0 makes it now)
#   PIUPARTS_SUITE    Debian suite of the chroot (default bookworm)
#   PIUPARTS_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   PIUPARTS_LOGS     directory for the full piuparts logs (default: the
#                     directory of NEW.deb)
#   TMPDIR            where the chroots are unpacked (default /tmp)
#
# Needs root, network access to the mirror, and the Debian packages
# piuparts, debootstrap, dpkg-dev (dpkg-scanpackages) and adequate.
set -eu

die() { echo "piuparts.sh: $*" >&2; exit 2; }
usage() { die "usage: $0 OLD.deb NEW.deb | --clean-cache"; }

# The base tarball is downloaded data, not build output: kept outside the
# checkout so that make clean and other checkouts keep and share it.
CACHE=${PIUPARTS_CACHE:-${XDG_CACHE_HOME:-${HOME:-}/.cache}/unitkit/piuparts}
# piuparts dist-upgrades a cached chroot before every run, so an old one
# stays correct but slower as updates pile up: a week bounds that.
MAX_AGE=${PIUPARTS_MAX_AGE:-7}
# Debian 12, the release the package is built for.
SUITE=${PIUPARTS_SUITE:-bookworm}
MIRROR=${PIUPARTS_MIRROR:-http://deb.debian.org/debian}

case $CACHE in /*) ;; *) die "PIUPARTS_CACHE=$CACHE: want an absolute directory (or set HOME or XDG_CACHE_HOME)" ;; esac
echo "$MAX_AGE" | grep -Eqx '[0-9]{1,4}' || die "PIUPARTS_MAX_AGE=$MAX_AGE: want a number of days, e.g. 7"
echo "$SUITE" | grep -Eqx '[a-z]+' || die "PIUPARTS_SUITE=$SUITE: want a Debian code name, e.g. bookworm"
echo "$MIRROR" | grep -Eqx '(https?|file)://[^[:space:]]+' || die "PIUPARTS_MIRROR=$MIRROR: want a URL, e.g. http://deb.debian.org/debian"

if [ "${1:-}" = --clean-cache ]; then
	[ $# -eq 1 ] || usage
	# Only the files this script makes, whatever PIUPARTS_CACHE names.
	rm -f "$CACHE"/base-*.tgz "$CACHE"/base-*.tgz.key "$CACHE"/lock
	rmdir "$CACHE" 2>/dev/null || true
	echo "piuparts cache cleared: $CACHE"
	exit 0
fi
[ $# -eq 2 ] || usage

[ "$(id -u)" = 0 ] || die "piuparts needs root (it builds and enters a chroot)"
for c in piuparts debootstrap dpkg-scanpackages adequate unshare flock findmnt; do
	command -v "$c" >/dev/null ||
		die "$c not found: apt-get install piuparts debootstrap dpkg-dev adequate"
done
ARCH=$(dpkg --print-architecture)
# Chroots are unpacked under TMPDIR (dpkg-deb uses it too).
TMP=${TMPDIR:-/tmp}
[ -d "$TMP" ] || die "TMPDIR=$TMP: no such directory"
case $(realpath "$TMP") in *[[:space:]]*) die "TMPDIR=$TMP: want a path without white space" ;; esac
case $(findmnt -no OPTIONS --target "$TMP") in
*nodev* | *nosuid* | *noexec*) die "TMPDIR=$TMP is mounted nodev, nosuid or noexec: a chroot cannot work there; set TMPDIR" ;;
esac

# field DEB NAME: a control field of a .deb, or a clear error.
field() {
	[ -f "$1" ] || die "$1: no such file (make package builds it)"
	dpkg-deb --field "$1" "$2" | grep . || die "$1: not a .deb package with a $2 field"
}

OLD=$(realpath "$1") NEW=$(realpath "$2")
PKG=$(field "$NEW" Package)
OLD_PKG=$(field "$OLD" Package)
[ "$OLD_PKG" = "$PKG" ] || die "$1 ($OLD_PKG) and $2 ($PKG) are different packages"
OLD_VERSION=$(field "$OLD" Version) NEW_VERSION=$(field "$NEW" Version)
dpkg --compare-versions "$NEW_VERSION" gt "$OLD_VERSION" ||
	die "$2 ($NEW_VERSION) is not newer than $1 ($OLD_VERSION): nothing to upgrade"
for deb in "$OLD" "$NEW"; do
	a=$(field "$deb" Architecture)
	[ "$a" = "$ARCH" ] || [ "$a" = all ] || die "$deb is for $a; this machine (and its chroot) is $ARCH"
done
LOGS=$(realpath -m "${PIUPARTS_LOGS:-$(dirname "$NEW")}")
mkdir -p "$LOGS"

# Everything piuparts unpacks goes into one directory of ours, so that what
# is left on the host afterwards can be checked and removed.
WORK=$(realpath "$(mktemp -d "$TMP/piuparts.XXXXXX")")
# Readable by apt's unprivileged _apt user, who reads the local repository.
chmod 0755 "$WORK"

# leftovers: mounts under WORK in the host's mount table, and processes
# whose root or working directory is under WORK.
leftovers() {
	awk -v w="$WORK" 'index($5, w "/") == 1 { print "mount " $5 }' /proc/self/mountinfo
	for p in /proc/[0-9]*; do
		for l in root cwd; do
			t=$(readlink "$p/$l" 2>/dev/null) || continue
			case $t in "$WORK"/*) echo "process ${p#/proc/} ($l $t)" ;; esac
		done
	done
}
cleanup() {
	rc=$?
	trap - EXIT
	left=$(leftovers | sort -u)
	if [ -n "$left" ]; then
		echo "piuparts.sh: left on this machine under $WORK (not removed):" >&2
		echo "$left" >&2
		exit 1
	fi
	rm -rf --one-file-system "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# piuparts mounts /proc, /dev/pts, /dev/shm and the repository into its
# chroot and stops what runs there. It runs in a private mount namespace
# and a pid namespace of its own, so that even if it dies before its
# clean-up, the kernel unmounts the mounts and kills the processes
# (--kill-child: also when unshare itself is killed).
isolated() {
	TMPDIR=$WORK unshare --mount --propagation private --pid --fork --mount-proc \
		--uts --ipc --kill-child "$@"
}

# The options of every run, one reason each.
set -- \
	-d "$SUITE" \
	-m "$MIRROR main" \
	-t "$WORK" \
	--update-retries=3 \
	--pedantic-purge-test \
	--fail-on-broken-symlinks \
	--fail-if-inadequate
# -d: the default is sid.
# -m with "main" only: the package and its dependencies are all in main;
#    the other components would only slow apt-get update.
# -t: chroots under WORK, checked and removed by cleanup.
# --update-retries: a network blip at apt-get update should not fail a run.
# --pedantic-purge-test: files left in /tmp count too; the package never
#    writes there.
# --fail-on-broken-symlinks: by default only a warning; the package ships
#    none and its scripts make only valid ones (unit enablement).
# --fail-if-inadequate: by default only a warning; adequate checks the
#    binaries' libraries, the alternatives and the files' owners.
# No --keep-sources-list: piuparts writes the chroot's sources.list from
# -d and -m every run, so the cached tarball holds nothing run-specific.

# Paths left after purging, not by the package but by its dependency
# systemd: systemd's postinst runs systemd-tmpfiles --create on its
# tmpfiles.d files, which makes these directories; no package owns them,
# so purging systemd leaves them. piuparts on systemd itself and on an
# empty package that only depends on systemd reports the same six
# (docs/decisions.md, "piuparts"). Exact directories: a file of ours
# inside one still fails the test. ':' has piuparts log each one it skips.
IGNORED=
for ignore in \
	/var/lib/private/ \
	/var/cache/private/ \
	/var/log/private/ \
	/var/lib/systemd/coredump/ \
	/var/lib/systemd/pstore/ \
	/root/.ssh/; do
	set -- "$@" -i ":$ignore"
	IGNORED="$IGNORED${IGNORED:+ }$ignore"
done
# /var/lib/private/, /var/cache/private/, /var/log/private/: systemd.conf,
#    "d ... 0700", the roots of DynamicUser= services' state, cache and
#    log directories.
# /var/lib/systemd/coredump/: systemd.conf, "d ... 0755 root root 3d".
# /var/lib/systemd/pstore/: systemd-pstore.conf, "d ... 0755 root root 14d".
# /root/.ssh/: provision.conf, "d- /root/.ssh 0700", for the
#    ssh.authorized_keys.root credential.

# show LOG: piuparts' progress and verdicts from a full log, with the file
# lists that follow an error; not the paths skipped (listed once, below) nor
# the banner.
show() {
	awk '/^ *[0-9]+m[0-9.]+s [A-Z]+: / {
		err = / ERROR: /
		if (/ (INFO|ERROR): / && !/-----|FAQ|scroll down|starting up|Command line|Running on|IGNORED PATH|apt-cache does not know/) print "  " $0
		next
	}
	err && /^[[:space:]]/ { print "  " $0; next }
	{ err = 0 }' "$1"
}

# run NAME VERDICT PIUPARTS-ARGS...: one piuparts run, its log in
# LOGS/NAME.log; it must end well and its log hold the line VERDICT (a test
# piuparts skips still ends with "PASS: All tests").
run() {
	name=$1 verdict=$2
	shift 2
	log=$LOGS/$name.log
	echo "== piuparts $name (log: $log)"
	start=$(date +%s)
	rc=0
	isolated piuparts "$@" >"$log" 2>&1 || rc=$?
	show "$log"
	left=$(leftovers)
	[ -z "$left" ] || { echo "piuparts.sh: piuparts left on this machine:" >&2; echo "$left" >&2; exit 1; }
	echo "   $name: exit $rc in $(($(date +%s) - start)) s"
	[ "$rc" = 0 ] || { echo "piuparts.sh: $name failed; see $log" >&2; exit 1; }
	grep -qF "$verdict" "$log" || { echo "piuparts.sh: $name: no \"$verdict\" in $log" >&2; exit 1; }
}

# The base chroot: debootstrap once, then reuse the tarball; made again
# when missing, older than MAX_AGE days, or made for another suite,
# architecture or mirror. One maker at a time; the others wait and reuse.
mkdir -p "$CACHE"
BASE=$CACHE/base-$SUITE-$ARCH.tgz
KEY="$SUITE $ARCH $MIRROR main"
exec 9>>"$CACHE/lock"
flock -w 900 9 || die "$CACHE/lock: still locked after 15 minutes by another run"
if [ -f "$BASE" ] && [ "$(cat "$BASE.key" 2>/dev/null)" = "$KEY" ] &&
	[ "$MAX_AGE" -gt 0 ] && [ -n "$(find "$BASE" -mtime -"$MAX_AGE")" ]; then
	echo "== base chroot: $BASE (made $(date -r "$BASE" '+%Y-%m-%d %H:%M'))"
else
	rm -f "$BASE" "$BASE.key"
	# piuparts wants a package argument; with both tests off it only
	# builds the chroot with debootstrap and saves it (-s).
	run base "PASS: All tests." "$@" -s "$BASE" --no-install-purge-test --no-upgrade-test "$NEW"
	echo "$KEY" >"$BASE.key"
fi
exec 9>&-

echo "== ignored if left after purging (systemd's, see docs/decisions.md): $IGNORED"
run install-purge "PASS: Installation and purging test." "$@" -b "$BASE" \
	--install-purge-install --install-remove-install --no-upgrade-test \
	"$NEW"

# The previous version as apt sees it: a flat repository holding OLD.deb,
# bind-mounted at the same path in the chroot. trusted=yes: it is unsigned;
# this trusts this one source, not every one (--do-not-verify-signatures).
mkdir "$WORK/repo"
cp "$OLD" "$WORK/repo/"
(cd "$WORK/repo" && dpkg-scanpackages --multiversion . >Packages 2>/dev/null)
grep -q "^Version: $OLD_VERSION\$" "$WORK/repo/Packages" || die "dpkg-scanpackages did not index $OLD"
run upgrade "PASS: Installation, upgrade and purging tests." "$@" -b "$BASE" \
	--bindmount "$WORK/repo" --extra-repo "deb [trusted=yes] file://$WORK/repo ./" \
	--no-install-purge-test \
	"$NEW"

echo "piuparts: $PKG $NEW_VERSION installs, reinstalls, upgrades from $OLD_VERSION and purges cleanly on $SUITE ($ARCH)"

#!/bin/sh
# build.sh — build the service's .deb and .rpm packages with nfpm.
#
# Variables (make package passes them through):
#   APP      package, unit, command and config name (default app)
#   VERSION  package version (default: derived from git)
#   ARCHS    Go architectures to build for (default "amd64 arm64")
#   FORMATS  nfpm packagers (default "deb rpm")
#   WORKER   Go package of the worker binary (default ./cmd/app)
#   DIST     output directory (default dist)
#   SOURCE_DATE_EPOCH  timestamp of every file and date in the packages
#                      (default: the last commit's time), for
#                      byte-identical rebuilds
set -eu
cd "$(dirname "$0")/.."

APP=${APP:-app}
ARCHS=${ARCHS:-amd64 arm64}
FORMATS=${FORMATS:-deb rpm}
WORKER=${WORKER:-./cmd/app}
DIST=${DIST:-dist}
if [ -z "${VERSION:-}" ]; then
	VERSION="0.0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null || echo 0).$(git rev-parse --short=8 HEAD 2>/dev/null || echo unknown)"
fi
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

die() { echo "build.sh: $*" >&2; exit 2; }
# A Debian package name that is also a plain systemd unit-name prefix.
echo "$APP" | grep -Eqx '[a-z0-9][a-z0-9-]{1,30}' ||
	die "APP=$APP: want 2 to 31 lower-case letters, digits or dashes, starting with a letter or digit"
echo "$VERSION" | grep -Eqx '[0-9][A-Za-z0-9.+~]*' ||
	die "VERSION=$VERSION: want a version starting with a digit, e.g. 1.2.0"
echo "$SOURCE_DATE_EPOCH" | grep -Eqx '[0-9]+' || die "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH: want seconds since 1970"
for f in $FORMATS; do
	case $f in deb | rpm) ;; *) die "FORMATS: unknown format $f (deb or rpm)" ;; esac
done
for a in $ARCHS; do
	case $a in amd64 | arm64) ;; *) die "ARCHS: unsupported architecture $a (amd64 or arm64)" ;; esac
done

STAGE=$DIST/stage/$APP
rm -rf "$STAGE"
mkdir -p "$STAGE/unit" "$STAGE/deb" "$STAGE/rpm"

# rename FILE OUT: the file with the service's name in place of "app" in
# unit names, paths, the command (appctl) and the operator group; appctl's
# --app flag keeps its name.
rename() {
	sed -E -e "s/\bapp([.@-]|ctl\b|\b)/$APP\1/g" -e "s/--$APP\b/--app/g" "$1" >"$2"
}
# The service's units, and contrib/prometheus's timer that writes its
# systemd metrics for node_exporter (shipped disabled).
for u in unit/app* contrib/prometheus/app-metrics.service contrib/prometheus/app-metrics.timer; do
	rename "$u" "$STAGE/unit/$(basename "$u" | sed "s/^app/$APP/")"
done
rename packaging/default.env "$STAGE/default"
rename packaging/polkit/50-app-operators.rules "$STAGE/polkit.rules"
rename packaging/lintian-overrides "$STAGE/lintian-overrides"
for s in deb/postinst deb/prerm deb/postrm rpm/post rpm/preun rpm/postun; do
	rename "packaging/$s" "$STAGE/$s"
	chmod 0755 "$STAGE/$s"
done
cp packaging/doc/copyright "$STAGE/copyright"
cp LICENSE "$STAGE/LICENSE"
# The Node package (contrib/node) as npm packs it: package.json and the
# files its "files" field lists. Node apps use it from /usr/lib/$APP/node.
mkdir -p "$STAGE/node"
for f in package.json index.js preload.js lib; do
	[ -e "contrib/node/$f" ] || die "contrib/node/$f is missing"
	cp -R "contrib/node/$f" "$STAGE/node/"
done
date=$(date -u -d "@$SOURCE_DATE_EPOCH" -R)
printf '%s (%s-1) unstable; urgency=medium\n\n  * unitkit %s.\n\n -- unitkit maintainers <maintainers@unitkit.invalid>  %s\n' \
	"$APP" "$VERSION" "$VERSION" "$date" | gzip -9n >"$STAGE/changelog.gz"
# The same entry as the .rpm's %changelog, in nfpm's changelog format; its
# version is the package's version-release (release 1, as in nfpm.yaml).
printf -- '- semver: "%s-1"\n  date: %s\n  packager: unitkit maintainers <maintainers@unitkit.invalid>\n  changes:\n    - note: unitkit %s.\n' \
	"$VERSION" "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)" "$VERSION" >"$STAGE/changelog.yaml"

export SOURCE_DATE_EPOCH CGO_ENABLED=0 GOFLAGS=-buildvcs=false
go run -ldflags "-X github.com/unitkit/unitkit/internal/cli.defaultApp=$APP" ./internal/docgen -out "$STAGE/docs"
mkdir -p "$STAGE/man1" "$STAGE/completions"
rename packaging/doc/app.1 "$STAGE/docs/man1/$APP.1"
for m in "$STAGE"/docs/man1/*.1; do
	gzip -9n <"$m" >"$STAGE/man1/$(basename "$m").gz"
done
cp "$STAGE"/docs/completions/* "$STAGE/completions/"
# The .rpm's man page entries (nfpm.yaml's @RPM_MAN_PAGES@), one per page:
# nfpm marks single files only as documentation.
for m in "$STAGE"/man1/*.1.gz; do
	printf '  - src: %s\n    dst: /usr/share/man/man1/%s\n    type: doc\n    file_info: {mode: 0644}\n' "$m" "$(basename "$m")"
done >"$STAGE/rpm-man-pages.yaml"

for arch in $ARCHS; do
	BUILD=$DIST/build/$APP/$arch
	mkdir -p "$BUILD"
	GOARCH=$arch go build -trimpath -ldflags "-s -w -buildid= -X main.version=$VERSION" -o "$BUILD/$APP" "$WORKER"
	GOARCH=$arch go build -trimpath -ldflags "-s -w -buildid= -X github.com/unitkit/unitkit/internal/cli.defaultApp=$APP" \
		-o "$BUILD/${APP}ctl" ./cmd/appctl
	for f in $FORMATS; do
		changelog='' pages=/dev/null
		if [ "$f" = rpm ]; then
			changelog=$STAGE/changelog.yaml pages=$STAGE/rpm-man-pages.yaml
		fi
		# nfpm expands variables only in some fields: render them all here.
		sed -e "s|\${APP}|$APP|g" -e "s|\${ARCH}|$arch|g" -e "s|\${VERSION}|$VERSION|g" \
			-e "s|\${STAGE}|$STAGE|g" -e "s|\${BUILD}|$BUILD|g" -e "s|\${CHANGELOG}|$changelog|g" \
			-e "/@RPM_MAN_PAGES@/r $pages" -e "/@RPM_MAN_PAGES@/d" nfpm.yaml >"$STAGE/nfpm-$arch-$f.yaml"
		# nfpm's "using ..." lines are noise; its errors are not, and its
		# exit status must survive the filter.
		if ! out=$(go tool nfpm package --config "$STAGE/nfpm-$arch-$f.yaml" --packager "$f" --target "$DIST/" 2>&1); then
			printf '%s\n' "$out" >&2
			echo "build.sh: nfpm could not build the $f package for $arch (above)" >&2
			exit 1
		fi
		printf '%s\n' "$out" | grep -v '^using ' || true
	done
done
ls -l "$DIST"/*.deb "$DIST"/*.rpm 2>/dev/null | awk '{print $5, $9}'

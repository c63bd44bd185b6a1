# unitkit: the project's vocabulary. `make help` lists the targets.

GO      ?= go
APP     ?= app
ARCHS   ?= amd64 arm64
FORMATS ?= deb rpm
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BINS    := $(patsubst cmd/%,bin/%,$(wildcard cmd/*))
# contrib/ folders whose validation needs heavy dependencies (Kubernetes,
# Prometheus) are modules of their own, kept out of the library's go.mod.
CONTRIB_MODULES := $(patsubst %/go.mod,%,$(wildcard contrib/*/go.mod))

export CGO_ENABLED ?= 0

.PHONY: all build run demo docs package bench test test-short soak test-packages clean-cache lint fuzz clean help

all: build

## build: compile every command in cmd/ into bin/
build: $(BINS)

bin/%: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$*

FORCE:

## run: build and run the reference worker in this terminal on :8080 (Ctrl-C drains and stops it)
run: bin/app
	./bin/app

## demo: build, boot systemd in a throwaway sandbox with unitkit installed, and open a shell in it (root; exit to tear down)
demo: build
	$(GO) run ./tests/demo -bin bin -units unit

## docs: generate appctl's man pages and shell completions into dist/docs
docs:
	$(GO) run ./internal/docgen -out dist/docs

## package: build .deb and .rpm packages for amd64 and arm64 into dist/ (APP=, VERSION=, ARCHS=, FORMATS=, SOURCE_DATE_EPOCH=)
package:
	APP=$(APP) ARCHS="$(ARCHS)" FORMATS="$(FORMATS)" ./packaging/build.sh

## bench: measure unitkit in a systemd sandbox next to one plain process (root); prints a table, writes bench/results/<date>.json
bench: build contrib/express/node_modules
	$(GO) run ./tests/bench -bin bin -units unit -out bench/results

## test: lint, then every test (with the race detector), contrib modules and the Node package included
test: lint contrib/express/node_modules
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 45m ./...
	@for m in $(CONTRIB_MODULES); do echo "== $$m"; (cd $$m && $(GO) test -count=1 ./...) || exit 1; done
	node --test contrib/node/test/*.test.js

# The Express app the scenarios and the bench run, at the versions its
# package-lock.json pins.
contrib/express/node_modules: contrib/express/package-lock.json
	cd contrib/express && npm ci --no-audit --no-fund
	@touch $@

## soak: beat on a herd in a systemd sandbox for DURATION (default 10m) with seeded random faults under constant-rate load (root); SEED= replays a run, REPORT= is where the Markdown report goes
DURATION ?= 10m
SEED     ?=
REPORT   ?= soak-report.md
soak:
	cd tests && SOAK_DURATION=$(DURATION) SOAK_SEED=$(SEED) SOAK_REPORT=$(abspath $(REPORT)) \
	  $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v .
	@echo "report: $(REPORT)"

## test-packages: piuparts on the .deb in a cached minimal Debian 12 chroot: install, purge, reinstall, remove, and an upgrade from the previous version, leaving nothing behind (root; network; PIUPARTS_CACHE=, see packaging/piuparts.sh)
# Both versions are built from this tree (no release is tagged yet): two
# numbers are enough for dpkg to upgrade and for the scripts to take their
# upgrade branches.
PREV_VERSION ?= 1.0.0
TEST_VERSION ?= 1.1.0
# piuparts tests packages of the machine's own architecture.
DEB_ARCH     ?= $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
test-packages:
	rm -rf dist/piuparts
	$(MAKE) --no-print-directory package VERSION=$(PREV_VERSION) FORMATS=deb ARCHS=$(DEB_ARCH) DIST=dist/piuparts/old
	$(MAKE) --no-print-directory package VERSION=$(TEST_VERSION) FORMATS=deb ARCHS=$(DEB_ARCH) DIST=dist/piuparts/new
	PIUPARTS_LOGS=dist/piuparts ./packaging/piuparts.sh \
	  dist/piuparts/old/$(APP)_$(PREV_VERSION)-1_$(DEB_ARCH).deb dist/piuparts/new/$(APP)_$(TEST_VERSION)-1_$(DEB_ARCH).deb

## clean-cache: remove the base chroot make test-packages keeps (it is made again on the next run, and anyway after a week)
clean-cache:
	./packaging/piuparts.sh --clean-cache

## test-short: the fast tests only
test-short:
	$(GO) test -short -count=1 ./...

## lint: gofmt, go vet and staticcheck must all be clean, go.mod tidy, and the Node package parse
lint:
	@command -v node >/dev/null || { echo "node not found: install Node.js 18 or later (Debian: apt-get install nodejs)"; exit 1; }
	@for f in $$(find contrib/node -name '*.js' -not -path '*/node_modules/*'); do node --check $$f || exit 1; done
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@sc=$$($(GO) tool -n staticcheck) && for m in $(CONTRIB_MODULES); do \
	  echo "== $$m"; (cd $$m && $(GO) vet ./... && $$sc ./...) || exit 1; \
	done

## fuzz: run each fuzz target for FUZZTIME (default 10s)
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## clean: remove build output
clean:
	rm -rf bin dist

## help: list the targets
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

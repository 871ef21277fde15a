# Sandlot's front door. `make run` and `make test` work on a fresh Debian machine (as root): they install and
# start what is missing (Docker engine, build tools), build the node image and the binaries, start the node engine
# (ops/node-engine: user-namespaced nodes), then do their job.

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO ?= go
BIN := bin/sandlot
RUNTIME := bin/sandlot-runtime
IMAGE_BIN := bin/image/sandlot
IMAGE_HOLDER := bin/image/sandlot-holder
HOLDER := bin/sandlot-holder
GO_SOURCES := $(shell find . -name '*.go' -not -path './frontend/node_modules/*') go.mod go.sum
STATICCHECK := $(HOME)/go/bin/staticcheck
UI := frontend/dist/index.html
NODE_MODULES := frontend/node_modules/.package-lock.json

.PHONY: all build ui host host-browser images node-image server-images engine engine-stop run test lint unit bench bench-on-engine screenshots gc clean

all: build

build: $(BIN) $(RUNTIME) $(HOLDER)

$(BIN): $(GO_SOURCES) $(UI)
	$(GO) build -o $@ ./cmd/sandlot

$(RUNTIME): $(GO_SOURCES)
	$(GO) build -o $@ ./cmd/sandlot-runtime

# The shell holder is copied into nodes (docs/decisions/0027): static, so that it runs in any node image.
$(HOLDER): $(GO_SOURCES)
	CGO_ENABLED=0 $(GO) build -ldflags='-s -w' -o $@ ./cmd/sandlot-holder

## ui: the web page, built into frontend/dist (embedded by the next go build)
ui: $(UI)

$(UI): $(NODE_MODULES) $(shell find frontend/src -type f) frontend/build.mjs frontend/openapi-types.mjs session/api/openapi.json
	cd frontend && node build.mjs

$(NODE_MODULES): frontend/package.json frontend/package-lock.json
	@command -v npm >/dev/null || ops/bootstrap-host
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## host: a Docker engine that answers, and the tools the image build needs (installs only what is missing)
host:
	@ops/bootstrap-host

## host-browser: host, and chromium for the browser tests
host-browser:
	@ops/bootstrap-host --browser

## images: the node image sandlot/node:latest, and the images docker-compose.yml runs: sandlot/sandlot (the server)
## and sandlot/redis; each is rebuilt only when its inputs changed
images: node-image server-images

## node-image: the node image sandlot/node:latest (rebuilt only when ops/node or the builder changed)
node-image: host
	@ops/build-node-image

## server-images: sandlot/sandlot and sandlot/redis (ops/sandlot), offline like the node image
server-images: host $(IMAGE_BIN) $(IMAGE_HOLDER)
	@ops/build-sandlot-image $(IMAGE_BIN) $(IMAGE_HOLDER)

# The server for its image: static, so that it runs on the image's Debian whatever this host's C library is; without
# version control stamps, so that a commit that changes no code changes no image.
$(IMAGE_BIN): $(GO_SOURCES) $(UI)
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -o $@ ./cmd/sandlot

# The shell holder beside it in the image (the server copies it into nodes), built the same way.
$(IMAGE_HOLDER): $(GO_SOURCES)
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags='-s -w' -o $@ ./cmd/sandlot-holder

## engine: the node engine (user-namespaced nodes; it keeps running), with the node image in it
engine: node-image $(RUNTIME)
	@ops/node-engine start --runtime $(RUNTIME)
	@ops/node-engine load-image sandlot/node:latest

## engine-stop: stop the node engine (its nodes stop with it) and remove its network namespace and rules
engine-stop:
	@ops/node-engine stop

## run: everything needed, then the server (on the node engine)
run: engine build
	$(BIN) serve

## test: the whole suite against the real engines (nodes on the node engine; the caps isolation on the local one),
## with the race detector, then a check that nothing leaked. A node engine this started is stopped at the end.
# -p 1: one package at a time. The instance tests switch the engine into swarm mode and back (for overlay
# networks); while that happens, Docker's embedded DNS in other packages' nodes may miss a name.
test: host-browser images lint $(RUNTIME)
	@mkdir -p .cache
	cd frontend && node build.mjs --tests && node --test dist-test/
	@ops/with-node-engine bash -c 'ops/check-test-leaks --before .cache/sessions-before-test && \
		SANDLOT_REQUIRE_DOCKER=1 $(GO) test -race -count=1 -p 1 -timeout 30m ./... && \
		ops/check-test-leaks --after .cache/sessions-before-test'

## unit: the tests that need no engine, in seconds: engine tests skip without touching one (SANDLOT_NO_ENGINE=1);
## the HTTP layer runs on in-memory nodes (session/memnodes) and a private redis-server
unit:
	SANDLOT_NO_ENGINE=1 DOCKER_HOST=unix:///nonexistent/make-unit-uses-no-engine $(GO) test -count=1 ./...

lint: $(STATICCHECK) $(UI)
	cd frontend && npx --no-install tsc --noEmit
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@latest

## bench: nodes against plain docker run; sessions, quota, swarm setup; terminals against raw docker exec; the
## lab proxy against direct requests; a workshop's idle dashboard; the page (bundle size, landing page, labs and
## PWD pages to a prompt, 20 attendees joining at once); keystroke echo through the compose deployment against the
## host's server
bench: images host-browser $(UI) $(RUNTIME)
	@ops/with-node-engine $(MAKE) --no-print-directory bench-on-engine

bench-on-engine:
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench . -benchtime 7x -timeout 30m ./instance
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench 'CreateSession|QuotaCheck' -benchtime 5x ./session/api
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench 'Swarm3m2w' -benchtime 5x -timeout 30m ./session/api
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench 'KeystrokeEcho|TerminalThroughput' -benchtime 5x ./session/api
	$(GO) test -run '^$$' -bench 'IdleTerminals|StalledViewer|KeystrokeEcho|Throughput' -benchtime 4x ./terminal
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench 'LabProxy' -benchtime 5x ./session/api
	$(GO) test -run '^$$' -bench 'DashboardIdle' -benchtime 5x ./session/api
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench 'WorkshopJoinServer' -benchtime 2x ./session/api
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench 'ExecMemory' -benchtime 3x ./e2e
	$(GO) test -run '^$$' -bench 'TenAtOnce' -benchtime 3x ./images
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench 'ImagePull|ImageTenUncached' -benchtime 1x -timeout 20m ./e2e
	$(GO) test -run '^$$' -bench 'BundleSize' -benchtime 1x ./frontend
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench 'LandingToPrompt|EmbeddedToPrompt' -benchtime 7x ./e2e
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench 'WorkshopJoin' -benchtime 1x -count 3 -timeout 30m ./e2e
	SANDLOT_REQUIRE_DOCKER=1 $(GO) test -run '^$$' -bench 'DeployEcho' -benchtime 1x -count 3 ./e2e

## screenshots: the browser tests' current screenshots of the page, into docs/screenshots (for the README)
screenshots: images host-browser $(UI) $(RUNTIME)
	ops/with-node-engine env SANDLOT_REQUIRE_DOCKER=1 SANDLOT_SCREENSHOTS=$(CURDIR)/docs/screenshots \
		$(GO) test -count=1 -run 'TestBrowserSwarmTemplate|TestBrowserLab' ./e2e

## gc: remove every container, network and volume of every Sandlot session on this engine
gc: build
	$(BIN) gc --all

clean:
	rm -rf bin frontend/dist/assets frontend/dist/index.html frontend/dist-test

# noon: the two commands a newcomer needs are `make run` and `make test`.
GO        ?= go
BIN       := bin
PKGS      := ./...
GOBIN     := $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
# RACE is -race in CI (set RACE= to skip it locally).
RACE      ?= -race
TESTFLAGS ?= -p 1
# FUZZTIME is an execution count (Nx), not a duration: a duration-based
# -fuzztime can fail with "context deadline exceeded" when it expires while a
# worker is mid-input (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 20000x

THRIFT_FILES := $(wildcard idl/*.thrift)
PROTO_FILES  := $(wildcard idl/*.proto)

.PHONY: run test bench gen lint build fuzz cluster clean chaos ts play play-sdk play-test

## run: the whole platform in one process on embedded defaults
run: build
	$(BIN)/noon dev -config configs/dev.yaml

## test: every test, unit and integration: Go, then the TypeScript SDK.
## The sockets' raw system calls (internal/rawio) are compiled only without
## the race detector, so their packages run again without it.
test:
	$(GO) test $(RACE) -count=1 -timeout 20m $(TESTFLAGS) $(PKGS)
	$(if $(RACE),$(GO) test -count=1 -timeout 10m $(TESTFLAGS) ./internal/rawio/ ./internal/link/ ./edge/ ./broker/)
	$(MAKE) ts
	$(MAKE) play-test

## fuzz: each fuzz target for FUZZTIME
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## bench: Go benchmarks, then noonbench
bench: build
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(BIN)/noonbench

## gen: regenerate idl/gen from idl/*.thrift and idl/*.proto. noongen writes
## each thrift service block's method code (the package idl/gen/<ns>/<ns>rpc,
## and their union idl/methods/methods_gen.go) and copies of the thrift files
## without the service blocks, from which thrift writes the structs only (its
## Go generator cannot skip a service's client and processor code); thrift
## errors name the copy, with the original's line numbers. Then the
## conformance vectors of idl/conformance are written from the new code
## (its sessions recorded from an in-process platform).
gen:
	rm -rf idl/gen && mkdir -p idl/gen
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  echo "noongen $(THRIFT_FILES)"; \
	  $(GO) run ./internal/tools/noongen -out idl/gen -import github.com/noonhq/noon/idl/gen \
	    -union idl/methods/methods_gen.go -thrift "$$tmp" $(THRIFT_FILES); \
	  for f in $(notdir $(THRIFT_FILES)); do \
	    echo "thrift $$f"; \
	    thrift --gen go:package_prefix=github.com/noonhq/noon/idl/gen/,skip_remote -out idl/gen "$$tmp/$$f"; \
	  done
	PATH="$(GOBIN):$$PATH" protoc -I idl --go_out=. --go_opt=module=github.com/noonhq/noon $(PROTO_FILES)
	gofmt -w idl/gen
	cd clients/ts && node scripts/gen.mjs ../../idl src/gen
	$(GO) run ./idl/conformance/gen -out idl/conformance

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "not gofmt-clean:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck $(PKGS)

## build: every command of cmd/ into bin/ (first refreshing noon dev's
## copy of the TypeScript SDK from clients/ts/dist when that was built)
build: play-sdk
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

clean:
	rm -rf $(BIN)

## ts: the TypeScript SDK (clients/ts): install its npm packages from
## package-lock.json, build it and run its tests (unit, conformance, and
## the integration test against a real `noon dev` built here)
ts:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/noon ./cmd/noon
	cd clients/ts && npm ci && npm run build && NOON_BIN=$(CURDIR)/$(BIN)/noon npm test

## play-sdk: copy the TypeScript SDK's compiled ESM (clients/ts/dist/src,
## the .js files) into cmd/noon/play/sdk, which noon embeds for the browser
## game at /play/. The copy is committed, so a machine without npm builds
## noon as is; without clients/ts/dist this keeps it. `make play` builds the
## SDK first; cmd/noon's TestPlaySDKFresh fails when the copy is stale.
PLAY_SDK := cmd/noon/play/sdk
play-sdk:
	@if [ -d clients/ts/dist/src ]; then \
	  rm -rf $(PLAY_SDK) && mkdir -p $(PLAY_SDK) && \
	  (cd clients/ts/dist/src && find . -name '*.js' | while read -r f; do \
	    mkdir -p "$(CURDIR)/$(PLAY_SDK)/$$(dirname "$$f")" && cp "$$f" "$(CURDIR)/$(PLAY_SDK)/$$f"; done) && \
	  echo "play-sdk: copied clients/ts/dist/src/**/*.js to $(PLAY_SDK)"; \
	else echo "play-sdk: no clients/ts/dist (run make play to build it): keeping the committed $(PLAY_SDK)"; fi

## play: build the TypeScript SDK (npm ci) and copy it into noon's browser game
play:
	cd clients/ts && npm ci && npm run build
	$(MAKE) play-sdk

## play-test: the browser game end to end: noon dev (bin/noon), two headless
## Chromium pages (Debian's /usr/bin/chromium, driven by playwright-core) and
## the Go bot (bin/race31bot) play race31 to the end (clients/play-test)
play-test: play
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/noon ./edge/client/examples/race31bot
	cd clients/play-test && npm ci && NOON_BIN=$(CURDIR)/$(BIN)/noon RACE31BOT_BIN=$(CURDIR)/$(BIN)/race31bot npm test

## chaos: the chaos suite, full run (4-5 minutes): a multi-process cluster on
## the local Postgres and its own redis-server under load, each fault in turn
## (see README, Chaos suite); CHAOSFLAGS=-short for the 2-minute CI run
chaos: build
	$(BIN)/noonchaos $(CHAOSFLAGS)

## cluster: yellow, the BrokerList, 2 brokers and 2 instances of each service as
## separate processes against the local Postgres and Redis (configs/cluster.yaml)
cluster: build
	$(BIN)/noon cluster -config configs/cluster.yaml

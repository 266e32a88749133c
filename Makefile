# peapod: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin
PKGS    := ./...
# Seconds each fuzz target runs under `make fuzz`.
FUZZTIME ?= 10s
# Minimising every new corpus entry of a big input (a 2 KB packet) can take
# the whole run; keep it short so the targets actually explore.
FUZZMINIMIZE ?= 10x
# Benchmark selection and duration for `make bench`.
BENCH     ?= .
BENCHTIME ?= 1s

.PHONY: all build run test vet fmt-check tidy-check bench fuzz proto soak anonymity clean sdk-deps sdk-node-deps sdk-python-deps chromium systemd-analyze python-plugin-deps sdk-test

all: build

# What --version prints, stamped into the binaries (internal/cli).
VERSION ?= $(shell git describe --tags 2>/dev/null)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD -- 2>/dev/null || echo +modified)
LDFLAGS := -X github.com/peapod-mixnet/peapod/internal/cli.stampedVersion=$(VERSION) -X github.com/peapod-mixnet/peapod/internal/cli.stampedCommit=$(COMMIT)

## build: every binary into bin/, the example plugins into bin/plugins/
build:
	@mkdir -p $(BIN)/plugins
	@echo "building $(BIN)/mixnet, $(BIN)/provider, $(BIN)/client (the first build takes a minute or two; later ones seconds)"
	@$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...
	@for p in examples/*/plugin; do \
		if [ -f $$p/main.go ]; then \
			name=$$(basename $$(dirname $$p)); \
			echo "building $(BIN)/plugins/$$name"; \
			$(GO) build -o $(BIN)/plugins/$$name ./$$p || exit 1; \
		fi; \
	done

## run: build everything and start the provider host on an embedded local mixnet
run: build
	@echo "starting $(BIN)/provider: a local mixnet and the provider, in one process (Ctrl-C stops it)"
	@exec $(BIN)/provider

## test: vet, formatting, the SDKs' unit tests and every Go test under the
## race detector (with the SDKs' integration tests, which PEAPOD_SDK_TESTS=1
## makes fail rather than skip when a dependency is missing)
test: tidy-check vet fmt-check build sdk-deps systemd-analyze python-plugin-deps sdk-test
	PEAPOD_SDK_TESTS=1 $(GO) test -race -timeout 40m $(PKGS)

## sdk-deps: what the SDKs' tests need, installed only when missing: the
## TypeScript SDK's npm packages (npm ci, from package-lock.json), Debian's
## python3-websockets and python3-cryptography, and Debian's chromium for
## the browser test. Node 20 or later must be on PATH.
SDK_TS     := sdk/typescript
SDK_PYTHON := /usr/bin/python3
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET    := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
sdk-deps: sdk-node-deps sdk-python-deps chromium

sdk-node-deps: $(SDK_TS)/node_modules/.package-lock.json
$(SDK_TS)/node_modules/.package-lock.json: $(SDK_TS)/package-lock.json $(SDK_TS)/package.json
	@major=$$(node --version 2>/dev/null | sed 's/^v\([0-9]*\).*/\1/'); \
	if [ -z "$$major" ] || [ "$$major" -lt 20 ]; then \
		echo "sdk: the TypeScript SDK needs Node 20 or later on PATH (found: $$(node --version 2>/dev/null || echo none))"; exit 1; fi
	cd $(SDK_TS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

sdk-python-deps:
	@$(SDK_PYTHON) -c 'import websockets, cryptography' 2>/dev/null || { \
		echo "sdk: installing Debian's python3-websockets and python3-cryptography"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq python3-websockets python3-cryptography >/dev/null; }

chromium:
	@command -v chromium >/dev/null || { \
		echo "installing Debian's chromium (for the headless browser tests)"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq chromium >/dev/null; }

## python-plugin-deps: what the Python plugin example and its tests need
## (plugins.TestPythonPlugin): Debian's python3-grpcio and python3-protobuf,
## and protoc (protobuf-compiler), with which the test checks its stubs
python-plugin-deps:
	@{ $(SDK_PYTHON) -c 'import grpc, google.protobuf' 2>/dev/null && command -v protoc >/dev/null; } || { \
		echo "installing Debian's python3-grpcio, python3-protobuf and protobuf-compiler (the Python plugin example)"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq python3-grpcio python3-protobuf protobuf-compiler >/dev/null; }

## systemd-analyze: Debian's systemd, whose systemd-analyze verify checks the
## units under deploy/systemd (deploy.TestSystemdUnits)
systemd-analyze:
	@command -v systemd-analyze >/dev/null || { \
		echo "installing Debian's systemd (systemd-analyze checks the units under deploy/)"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq systemd >/dev/null; }

## sdk-test: the SDKs' unit tests (the integration tests run under go test,
## in internal/testnet, against a network of processes)
sdk-test: sdk-node-deps sdk-python-deps
	cd $(SDK_TS) && node node_modules/typescript/bin/tsc -p . && node --experimental-websocket --test test/
	cd sdk/python && $(SDK_PYTHON) -m unittest discover -s tests -t .

vet:
	$(GO) vet $(PKGS)

## tidy-check: go.mod and go.sum are exactly what `go mod tidy` would write
tidy-check:
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run 'go mod tidy' (go mod tidy -diff shows what changes)"; exit 1; }

fmt-check:
	@files=$$(gofmt -l $$(find . -name '*.go' -not -path './bench/peers/*' -not -path './.peapod/*')); \
	if [ -n "$$files" ]; then echo "gofmt: these files need formatting:"; echo "$$files"; exit 1; fi

## bench: the Go benchmarks of every package, then the end-to-end benchmark of
## a process network, which writes its section of docs/benchmarks.md and
## docs/e2e-latency.svg (E2EFLAGS tunes it, e.g. E2EFLAGS=-load=60s)
E2EFLAGS ?=
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) $(PKGS)
	$(GO) run ./internal/testnet/cmd/e2ebench $(E2EFLAGS)

## soak: run a process network for SOAK_DURATION with steady traffic and random
## restarts; fails on any lost or duplicated message (SOAKFLAGS for more;
## SOAKFLAGS=-flood adds attackers: a request flood, half-open handshakes and
## registrations from other loopback addresses; -flood-tags N spreads the
## request flood over N sender tags)
SOAK_DURATION ?= 10m
SOAKFLAGS ?=
soak:
	$(GO) run ./internal/testnet/cmd/soak -duration $(SOAK_DURATION) $(SOAKFLAGS)

## anonymity: measure what a global passive adversary learns from a process
## network of 20 clients over delays 0, 5, 15, 50 ms and cover on/off, and
## write docs/anonymity.md and docs/anonymity.svg (needs root for the packet
## capture; about 25 minutes). At Nym's cover rates 20 clients need more than
## 2 cores, so the network runs 5 times slower (--time-scale 5: delays and
## cover gaps x5, rates /5), which keeps every rate x delay product; on a
## larger machine ANONFLAGS="--time-scale 1" runs it as is. ANONFLAGS tunes it,
## e.g. ANONFLAGS="--clients 10 --duration 10s"; `make test` runs its short
## mode, anonymity/measure.TestMeasureShort)
ANONFLAGS ?= --time-scale 5
anonymity: build
	$(BIN)/mixnet measure $(ANONFLAGS)

## fuzz: a short run of every fuzz target
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
			echo "fuzz $$pkg $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$pkg || exit 1; \
		done; \
	done

## proto: regenerate plugins/proto's Go code and the Python example's
## handler_pb2.py (needs protoc: Debian's protobuf-compiler)
proto:
	@command -v protoc >/dev/null || { echo "proto: protoc not found; install it with: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(abspath $(BIN))/tools $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$$($(GO) list -m -f '{{.Version}}' google.golang.org/protobuf)
	GOBIN=$(abspath $(BIN))/tools $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	PATH="$(abspath $(BIN))/tools:$$PATH" protoc --proto_path=plugins/proto \
		--go_out=plugins/proto --go_opt=paths=source_relative \
		--go-grpc_out=plugins/proto --go-grpc_opt=paths=source_relative \
		plugins/proto/handler.proto
	protoc --proto_path=plugins/proto --python_out=examples/upper-python plugins/proto/handler.proto

clean:
	rm -rf $(BIN)

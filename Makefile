# Tandem — build, test and run. Tool versions are pinned here and installed with `go install`
# into .bin/, so a fresh machine needs only Go, make and (for tests) redis-server.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO            ?= go
BIN           := $(CURDIR)/.bin
export PATH   := $(BIN):$(PATH)

BUF_VERSION                := v1.70.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GOLANGCI_LINT_VERSION      := v2.15.0

# Every module of the workspace (go.work). Each is tested on its own (GOWORK=off) so that its
# go.mod is proven complete.
MODULES := proto pkg services/scheduler services/exchange-worker services/salesforce-worker \
           services/reconciler services/status-api cmd/tandem deploy

# Flags for `make run`: a small seeded demo that syncs until both sides agree, then keeps running.
RUN_FLAGS ?= --users 5 --contacts-per-user 40

.PHONY: help run test test-go proto proto-check lint fmt bench tools clean image

# Images (make image): version and commit are stamped into the binaries and the OCI labels.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE      ?= $(shell git log -1 --format=%cI 2>/dev/null)
IMAGE     ?= ghcr.io/tandem-sync/tandem
PLATFORMS ?= linux/amd64,linux/arm64
# PUSH=--push publishes the multi-architecture images; without it buildx only builds them.
PUSH      ?=

help:
	@echo "make run    - the all-in-one demo: every service, embedded NATS and Redis, simulated Exchange and Salesforce"
	@echo "make test   - every test of every workspace module, with -race, plus the generated-code check"
	@echo "make proto  - lint the protobuf contracts and regenerate the Go code"
	@echo "make lint   - buf lint and golangci-lint (.golangci.yml) on every module"
	@echo "make fmt    - format Go and protobuf sources"
	@echo "make bench  - run the benchmarks"
	@echo "make image  - the service and CLI images for $(PLATFORMS), tagged $(VERSION) (PUSH=--push to publish)"

run:
	@echo "Building tandem (the first build compiles every package and takes a minute or two)..."
	@$(GO) build -o $(BIN)/tandem ./cmd/tandem
	@$(BIN)/tandem dev $(RUN_FLAGS)

test: proto-check test-go

test-go:
	@for m in $(MODULES); do \
		echo "==> go test $$m"; \
		(cd $$m && GOWORK=off $(GO) test -race -count=1 -timeout 20m ./...) || exit 1; \
	done

$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/golangci-lint:
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

PROTO_TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc
tools: $(PROTO_TOOLS) $(BIN)/golangci-lint

# The descriptors with comments that status-api's server reflection serves (see
# proto/tandem/v1/descriptors.go) are built beside the generated code.
DESCRIPTORS := proto/tandem/v1/descriptors.binpb

proto: $(PROTO_TOOLS)
	buf lint
	buf generate
	buf build -o $(DESCRIPTORS) --path proto/tandem/v1

# Fails when the committed generated code is not what `make proto` produces.
proto-check: $(PROTO_TOOLS)
	buf lint
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	buf generate -o "$$tmp"; \
	stale=0; \
	for f in "$$tmp"/proto/tandem/v1/*.go "$$tmp"/proto/eventbus/v1/*.go; do \
		rel=$${f#"$$tmp"/}; \
		if ! cmp -s "$$f" "$$rel"; then echo "stale generated code: $$rel (run make proto)"; stale=1; fi; \
	done; \
	for f in proto/tandem/v1/*.pb.go proto/eventbus/v1/*.pb.go; do \
		[ -f "$$tmp/$$f" ] || { echo "generated file without a source: $$f"; stale=1; }; \
	done; \
	buf build -o "$$tmp/descriptors.binpb" --path proto/tandem/v1; \
	if ! cmp -s "$$tmp/descriptors.binpb" $(DESCRIPTORS); then echo "stale descriptors: $(DESCRIPTORS) (run make proto)"; stale=1; fi; \
	exit $$stale
	@echo "generated protobuf code is up to date"

# golangci-lint with the committed .golangci.yml (govet, staticcheck, errcheck, errorlint, gosec,
# misspell, revive, ...; gofmt as its formatter check) on every module, and buf lint.
lint: $(PROTO_TOOLS) $(BIN)/golangci-lint
	buf lint
	@for m in $(MODULES); do \
		echo "==> golangci-lint $$m"; \
		(cd $$m && GOWORK=off golangci-lint run --config $(CURDIR)/.golangci.yml ./...) || exit 1; \
	done

fmt: $(BIN)/buf
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')
	buf format -w --exclude-path proto/eventbus # Salesforce's file stays as published

bench:
	@for m in pkg cmd/tandem; do \
		(cd $$m && GOWORK=off $(GO) test -run='^$$' -bench=. -benchmem ./...) || exit 1; \
	done

clean:
	rm -rf $(BIN)

image:
	docker buildx build --platform $(PLATFORMS) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) \
		--target services -t $(IMAGE):$(VERSION) $(PUSH) .
	docker buildx build --platform $(PLATFORMS) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) \
		--target cli -t $(IMAGE)-cli:$(VERSION) $(PUSH) .

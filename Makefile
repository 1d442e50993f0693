# docker-imgx: make help lists the targets.
SHELL := /bin/bash
GO ?= go
BIN ?= bin/docker-imgx
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
PKG := github.com/docker-imgx/docker-imgx
LDFLAGS := -s -w -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.Revision=$(REVISION)
# docker reads plugins from $DOCKER_CONFIG/cli-plugins, else ~/.docker/cli-plugins.
PLUGIN_DIR ?= $(or $(DOCKER_CONFIG),$(HOME)/.docker)/cli-plugins
DIST ?= dist
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 linux/arm/v7 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
# make release-check builds these twice (the second time with an empty build
# cache) and compares: two operating systems and a GOARM variant.
RELEASE_CHECK_PLATFORMS ?= linux/arm/v7 windows/amd64
GOLANGCI_LINT_VERSION ?= v2.15.0
# The peers make bench runs beside docker-imgx, pinned, built from the Go
# module proxy into bin/tools (NAME=MODULE@VERSION); skopeo comes from apt.
BENCH_PEERS ?= crane=github.com/google/go-containerregistry/cmd/crane@v0.22.1 \
	regctl=github.com/regclient/regclient/cmd/regctl@v0.11.7 \
	oras=oras.land/oras/cmd/oras@v1.3.6 \
	buildx=github.com/docker/buildx/cmd/buildx@v0.38.2
TOOLS := $(CURDIR)/bin/tools
# The integration tests run side by side (each starts its own registries and
# Docker engines); most of their time is spent waiting on the processes they
# start, so four at once on two cores.
TEST_FLAGS ?= -race -count=1 -timeout 30m -parallel 4
# Fuzz budgets are counts, not durations: Go 1.26's fuzz coordinator can fail a
# duration-bound run with "context deadline exceeded" at its end (golang/go#75804),
# and minimizing counts too, so new inputs do not stall the run. FUZZTIME=30s (or
# 5000x) overrides every target's budget.
FUZZTIME ?=
# Each target: PACKAGE:FUZZ_FUNC:BUDGET.
FUZZ_TARGETS ?= ref:FuzzParse:20000x create:FuzzParseSource:20000x combine:FuzzParseAnnotation:20000x \
	oci:FuzzPlatform:20000x ocilayout:FuzzLayoutIndex:3000x \
	imagetar:FuzzArchive:3000x
# The integration tests run this build of the binary: the race detector in
# the real process, not only in the test harness. The release build (build)
# stays static and race-free.
RACE_BIN ?= bin/race/docker-imgx
# The Docker 29-line engine the integration tests also load into: dockerd
# (moby v2) and containerd v2, pinned in tools/engine (a module of its own),
# built through the Go module proxy once and rebuilt only when the pins change.
ENGINE_DIR := $(TOOLS)/engine
ENGINE_BINS := $(ENGINE_DIR)/dockerd $(ENGINE_DIR)/containerd

.PHONY: help build build-race engine install install-check release release-check test unit integration lint docs validate-docs demo bench bench-peers fuzz fuzz-check clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the plugin binary into bin/docker-imgx
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/docker-imgx

build-race: ## Build bin/race/docker-imgx (same name: messages name it), with the race detector, for the integration tests
	CGO_ENABLED=1 $(GO) build -race -trimpath -ldflags "$(LDFLAGS)" -o $(RACE_BIN) ./cmd/docker-imgx

engine: $(ENGINE_BINS) ## Build the Docker 29-line engine the tests load into (dockerd, containerd v2) into bin/tools/engine

$(ENGINE_BINS) &: tools/engine/go.mod tools/engine/go.sum
	mkdir -p $(ENGINE_DIR)
	cd tools/engine && GOFLAGS= $(GO) build -trimpath -o $(ENGINE_DIR)/ \
		github.com/moby/moby/v2/cmd/dockerd github.com/containerd/containerd/v2/cmd/containerd
	touch $(ENGINE_BINS)

install: build ## Install the plugin into $DOCKER_CONFIG/cli-plugins, else ~/.docker/cli-plugins (docker imgx)
	mkdir -p $(PLUGIN_DIR)
	install -m 0755 $(BIN) $(PLUGIN_DIR)/docker-imgx
	@echo "installed $(PLUGIN_DIR)/docker-imgx: try 'docker imgx --help'"

install-check: ## Run each install way of the README as written, on a clean HOME, and check docker imgx version
	./scripts/install-check.sh

release: ## Build static, stripped, reproducible binaries for every release platform into dist/, with one sha256 file
	rm -rf $(DIST)
	./scripts/release.sh build $(DIST) $(VERSION) $(REVISION) $(RELEASE_PLATFORMS)

release-check: ## Build a cross-platform subset of the release twice and fail unless byte-identical
	./scripts/release.sh check $(VERSION) $(REVISION) $(RELEASE_CHECK_PLATFORMS)

test: build build-race engine ## Run unit and integration tests (real registries, the real binary built with -race, real engines)
	@if [ -n "$$($(GO) version -m $(BIN) | grep -E 'CGO_ENABLED=1|-race')" ]; then echo "$(BIN) is not a static, race-free build"; exit 1; fi
	IMGX_BINARY=$(CURDIR)/$(RACE_BIN) IMGX_ENGINE_DIR=$(ENGINE_DIR) $(GO) test $(TEST_FLAGS) ./...

lint: ## gofmt, go vet, and golangci-lint (installed once into bin/tools through the Go module proxy)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if [ ! -x $(TOOLS)/golangci-lint ] && ! GOBIN=$(TOOLS) GOFLAGS= $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); then \
		echo "golangci-lint $(GOLANGCI_LINT_VERSION) does not install here: gofmt and go vet only"; \
	else $(TOOLS)/golangci-lint run ./... ; fi

docs: ## Regenerate docs/reference from the command tree
	$(GO) run ./docs -source docs/reference

validate-docs: ## Fail when docs/reference is stale
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cp -a docs/reference/. "$$tmp/"; \
	$(GO) run ./docs -source "$$tmp" && diff -ru docs/reference "$$tmp" && echo "docs/reference is up to date"

demo: build ## Build, start a throwaway local registry, run the commands on sample images
	@./scripts/demo.sh $(BIN)

bench: build bench-peers engine ## Run the Go benchmarks, then the suite through the binary beside its peers (writes docs/bench; BENCH_FLAGS=-quick to check it runs)
	IMGX_ENGINE_DIR=$(ENGINE_DIR) $(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./tests/bench -binary $(BIN) -tools $(TOOLS) $(BENCH_FLAGS)

bench-peers: ## Build the pinned peers of make bench into bin/tools (once per version)
	@set -e; for p in $(BENCH_PEERS); do name=$${p%%=*}; mod=$${p#*=}; \
		if [ -x $(TOOLS)/$$name ] && $(GO) version -m $(TOOLS)/$$name | grep -q "^[[:space:]]*mod[[:space:]].*[[:space:]]$${mod##*@}\b"; then continue; fi; \
		ld="-s -w"; [ $$name != buildx ] || ld="$$ld -X github.com/docker/buildx/version.Version=$${mod##*@}"; \
		echo "==> $$mod"; GOBIN=$(TOOLS) GOFLAGS= CGO_ENABLED=0 $(GO) install -trimpath -ldflags "$$ld" $$mod; \
	done

fuzz: ## Run each fuzz target of the core for its budget (FUZZTIME overrides); fails on a target that does not exist
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz.sh run $(FUZZ_TARGETS)

fuzz-check: ## Fail unless every target of FUZZ_TARGETS exists
	GO=$(GO) ./scripts/fuzz.sh check $(FUZZ_TARGETS)

clean: ## Remove build output
	rm -rf bin $(DIST)

# halb — see README.md. Two set-up commands: `make run` and `make test`.
GO        ?= go
BIN       ?= bin/halb
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X halb/internal/version.Version=$(VERSION)
FUZZTIME  ?= 10s
PKGS      := ./...

.PHONY: all build run test fmt-check vet race fuzz bench clean test-ipvs

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/halb

# The main job: halb on an embedded default config, on 127.0.0.1, in front of demo backends it starts itself.
run: build
	./$(BIN) run --demo

test: fmt-check vet race

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files -o --exclude-standard '*.go' 2>/dev/null)); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

race:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# A short run of every fuzz target (FUZZTIME each).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Micro-benchmarks (parser, balancing, codecs); the side-by-side harness is `halb bench`.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin

# IPVS tests inside a throwaway qemu VM on Debian's kernel (the build machines have no ip_vs).
test-ipvs:
	bash ipvs/vmtest/run.sh

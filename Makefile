# halb — see README.md. Two set-up commands: `make run` and `make test`.
GO        ?= go
BIN       ?= bin/halb
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X halb/internal/version.Version=$(VERSION)
FUZZTIME  ?= 10s
PKGS      := ./...
PREFIX    ?= /usr/local
DESTDIR   ?=

.PHONY: all build run test fmt-check tidy-check vet race fuzz bench clean install test-ipvs

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/halb

# The main job: halb on an embedded default config, on 127.0.0.1, in front of demo backends it starts itself.
run: build
	./$(BIN) run --demo

test: fmt-check tidy-check vet race

# Every Go file git knows (tracked or not ignored); outside a git checkout (a source tarball),
# every .go file under the tree.
fmt-check:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  files=$$(git ls-files '*.go'; git ls-files -o --exclude-standard '*.go'); \
	else \
	  files=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*'); \
	fi; \
	out=$$(gofmt -l $$files); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# go.mod and go.sum are what `go mod tidy` makes of them.
tidy-check:
	$(GO) mod tidy -diff

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/halb
	install -D -m 0644 dist/halb.service $(DESTDIR)/etc/systemd/system/halb.service

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

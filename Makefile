# hsm-demo — top-level Makefile.
#
#   make demo    the main job on a fresh machine (installs what it needs)
#   make test    every test (installs what it needs, starts every server it needs)
#
# Each area adds its own targets in mk/*.mk and registers its test target in TEST_TARGETS.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT        := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CARGO       ?= cargo
CARGO_TARGET_DIR ?= $(ROOT)/target
export CARGO_TARGET_DIR
BIN_DEBUG   := $(CARGO_TARGET_DIR)/debug/hsm-demo
BIN_RELEASE := $(CARGO_TARGET_DIR)/release/hsm-demo
RUN_DIR     := $(ROOT)/.run
VENV        := $(ROOT)/.venv
PY          := $(VENV)/bin/python

# Under make, each Rust test binary starts its own AWS stand-in (tests/common/standin.rs) rather
# than using whatever answers on :4566 (plain `cargo test` after `make aws-up` still uses that one).
export HSM_DEMO_TEST_OWN_STANDIN := 1

# Test targets registered by the fragments, run in this order by `make test`.
TEST_TARGETS :=
# Benchmark targets registered by the fragments; each appends its section to docs/benchmarks.md.
BENCH_TARGETS :=

include $(sort $(wildcard $(ROOT)/mk/*.mk))

.PHONY: help test bench lint fmt
help:
	@echo "make demo        run the spec's HSM flow on a project-local SoftHSM2 token, then the AWS part"
	@echo "make test        run every test (installs packages, starts the local AWS stand-in)"
	@echo "make bench       benchmarks -> docs/benchmarks.md"
	@echo "make lint | fmt  cargo fmt --check + clippy -D warnings | cargo fmt"
	@echo "make deps        install what the project needs (Debian packages, Python venv)"
	@echo
	@echo "Every other target, from the header of the mk/*.mk file that defines it:"
	@awk '/^#   make /{on=1; sub(/^#   /, "  "); print; next} on && /^#     /{sub(/^#   /, "  "); print; next} {on=0}' \
	  $(sort $(wildcard $(ROOT)/mk/*.mk))

# Runs every registered test target; a stand-in that this run started on :4566 (make aws-up, used by
# infra-e2e) is stopped at the end, pass or fail, so nothing the tests start outlives them. One that
# was already running (yours, or LocalStack) is left alone.
test:
	@started_here=1; [ ! -f $(RUN_DIR)/standin.pid ] || started_here=0; \
	trap 'if [ $$started_here = 1 ] && [ -f $(RUN_DIR)/standin.pid ]; then $(MAKE) --no-print-directory aws-down; fi' EXIT; \
	$(MAKE) --no-print-directory test-all

.PHONY: test-all
test-all: deps $(TEST_TARGETS)
	@echo "make test: all test targets passed ($(TEST_TARGETS))"

bench: deps $(BENCH_TARGETS)
	@echo "make bench: results in docs/benchmarks.md ($(BENCH_TARGETS))"

lint: deps-rust
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

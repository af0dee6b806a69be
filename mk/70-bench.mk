# Provisioning benchmarks -> docs/benchmarks.md (its own marked block; bench-hsm has another).
#
#   make bench-provision   1. provision --manifest vs the shell pipeline (scripts/baseline-provision.sh)
#                          2. sustained issuance under the stand-in's 25 TPS throttling
#                          3. peak RSS for a small and a large manifest
#                          4. HSM side (keygen + CSR) with 1/2/4 workers vs a plain cryptoki loop
#   make bench-scaleout    1, 2, 3, 5 runners on one manifest, throttled at the quotas (below)
#   make bench-fleet       CSR mode at 1k/10k devices (rate, RSS), --plan over 10k CSRs, pca expiring
#                          over the registry (time, read cost), renew --all under the throttle (below)
#   make bench-baseline-deps   the AWS CLI for the baseline pipeline, in its own venv (.venv-awscli)
#
# Sizes (defaults): BENCH_N1=200 BENCH_NB=20 BENCH_N2=1000 BENCH_N3_SMALL=1000 BENCH_N3_LARGE=10000
# BENCH_N4=300; BENCHES="1 2 3 4" runs a subset. See docs/benchmarks.md for the measured run.
#
#   make bench-check       the rows of docs/benchmarks.md that miss their target (measures nothing;
#                          `make bench` runs it last; BENCH_STRICT=1: exit 1 when a row misses)
AWSCLI_VENV    := $(ROOT)/.venv-awscli
BENCH_N1       ?= 200
BENCH_NB       ?= 20
BENCH_N2       ?= 1000
BENCH_N3_SMALL ?= 1000
BENCH_N3_LARGE ?= 10000
BENCH_N4       ?= 300
BENCHES        ?= 1 2 3 4

.PHONY: bench-provision bench-baseline-deps bench-build

# awscli pins botocore exactly, which conflicts with requirements.txt's botocore: own venv.
bench-baseline-deps: $(AWSCLI_VENV)/.stamp
$(AWSCLI_VENV)/.stamp: $(ROOT)/scripts/bench/requirements-awscli.txt
	$(call make-venv,$(AWSCLI_VENV),$<)

# One release build for every benchmark binary (bench-hsm's csign_loop included).
bench-build: deps-apt deps-rust
	$(CARGO) build --release --bin hsm-demo --example csign_loop --example keygen_csr_loop --example hsm_pool_loop

bench-provision: bench-build deps-py bench-baseline-deps
	@ROOT=$(ROOT) BIN=$(BIN_RELEASE) KLOOP=$(CARGO_TARGET_DIR)/release/examples/keygen_csr_loop \
	  PLOOP=$(CARGO_TARGET_DIR)/release/examples/hsm_pool_loop \
	  PY=$(PY) AWS_CLI=$(AWSCLI_VENV)/bin/aws BENCHES="$(BENCHES)" \
	  N1=$(BENCH_N1) NB=$(BENCH_NB) N2=$(BENCH_N2) N3_SMALL=$(BENCH_N3_SMALL) N3_LARGE=$(BENCH_N3_LARGE) N4=$(BENCH_N4) \
	  bash $(ROOT)/scripts/bench-provision.sh

BENCH_TARGETS += bench-provision

# Scale-out: 1, 2, 3 and 5 runners on one manifest at the real quotas (its own marked block).
#   make bench-scaleout   BENCH_SCALEOUT_N=600 BENCH_SCALEOUT_RUNNERS="1 2 3 5" BENCH_SCALEOUT_KEYS=hsm
#                         (KEYS=device: devices bring their own CSRs, the AWS half alone)
BENCH_SCALEOUT_N       ?= 600
BENCH_SCALEOUT_RUNNERS ?= 1 2 3 5
BENCH_SCALEOUT_KEYS    ?= hsm
.PHONY: bench-scaleout
bench-scaleout: bench-build deps-py
	@ROOT=$(ROOT) BIN=$(BIN_RELEASE) PY=$(PY) N=$(BENCH_SCALEOUT_N) RUNNERS="$(BENCH_SCALEOUT_RUNNERS)" \
	  KEYS=$(BENCH_SCALEOUT_KEYS) bash $(ROOT)/scripts/bench-scaleout.sh

BENCH_TARGETS += bench-scaleout

# Fleet benchmarks -> docs/benchmarks.md (block bench-fleet) and docs/registry-schema.md (figures
# at 1,000,000 devices), scripts/bench-fleet.sh:
#   1. CSR mode (no PKCS#11 module), BENCH_FLEET_SMALL and BENCH_FLEET_LARGE devices under the
#      stand-in's 25 TPS throttling: rate vs the quota, peak RSS and its growth
#   2. provision --manifest --plan over BENCH_FLEET_LARGE CSRs
#   3. pca expiring over the registries of 1: time, Scan pages, read capacity
#   4. renew --all of BENCH_FLEET_RENEW devices under the throttling: rate vs the quota
# Sizes (defaults): BENCH_FLEET_SMALL=1000 BENCH_FLEET_LARGE=10000 BENCH_FLEET_RENEW=1000;
# BENCH_FLEET="1 2 3 4" runs a subset (3 needs 1). BIN=path/to/hsm-demo runs another build (a debug
# one, to try the script) and skips the release build.
BENCH_FLEET_SMALL ?= 1000
BENCH_FLEET_LARGE ?= 10000
BENCH_FLEET_RENEW ?= 1000
BENCH_FLEET       ?= 1 2 3 4

.PHONY: bench-fleet
bench-fleet: $(if $(BIN),,bench-build) deps-apt deps-py
	@ROOT=$(ROOT) BIN=$(or $(BIN),$(BIN_RELEASE)) PY=$(PY) BENCHES="$(BENCH_FLEET)" \
	  N_SMALL=$(BENCH_FLEET_SMALL) N_LARGE=$(BENCH_FLEET_LARGE) N_RENEW=$(BENCH_FLEET_RENEW) \
	  bash $(ROOT)/scripts/bench-fleet.sh

BENCH_TARGETS += bench-fleet

# Every row of docs/benchmarks.md carries its verdict (met column); print the rows that miss.
.PHONY: bench-check bench-verdicts
bench-check:
	@python3 $(ROOT)/scripts/bench/check.py $(if $(filter 1,$(BENCH_STRICT)),--strict) $(ROOT)/docs/benchmarks.md

# `make bench` ends with the check, after every registered benchmark (the fragments that register
# one sort before this one, so BENCH_TARGETS is complete here).
bench-verdicts: $(BENCH_TARGETS)
	@$(MAKE) --no-print-directory bench-check
bench: bench-verdicts

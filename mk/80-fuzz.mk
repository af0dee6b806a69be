# Fuzzing (docs/fuzzing.md): one cargo-fuzz (libFuzzer) target per parser of outside input, run
# one after another for FUZZ_SECONDS each. Not registered in TEST_TARGETS: `make test` never builds
# the fuzz crate (fuzz/ is its own workspace with its own target directory, fuzz/target).
#
#   make fuzz                          every target, 60 s each
#   make fuzz FUZZ_SECONDS=300 FUZZ_TARGETS="uri ids"
#
# Corpora grow in fuzz/corpus/<target> (not committed); the committed seeds are fuzz/seeds/<target>.
# A crash stops the run and leaves its input in fuzz/artifacts/<target>/; the libFuzzer log of each
# target is fuzz/target/logs/<target>.log.
FUZZ_DIR      := $(ROOT)/fuzz
FUZZ_SECONDS  ?= 60
FUZZ_TARGETS  ?= uri manifest_csv manifest_jsonl ceremony_config transcript csr ceremony_csr duration ids hex
# Release build with debug assertions (overflow checks) and AddressSanitizer (the default).
FUZZ_BUILD    := -O --debug-assertions --target-dir $(FUZZ_DIR)/target
# cargo-fuzz needs nightly flags (-Zsanitizer); RUSTC_BOOTSTRAP lets the stable toolchain take them.
FUZZ_ENV      := RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(FUZZ_DIR)/target

.PHONY: fuzz fuzz-deps fuzz-build
fuzz-deps: deps-rust
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

fuzz-build: fuzz-deps
	cd $(FUZZ_DIR) && $(FUZZ_ENV) $(CARGO) fuzz build $(FUZZ_BUILD)

fuzz: fuzz-build
	@mkdir -p $(FUZZ_DIR)/target/logs
	@cd $(FUZZ_DIR) && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s (log: fuzz/target/logs/$$t.log)"; \
	  if ! $(FUZZ_ENV) $(CARGO) fuzz run $(FUZZ_BUILD) $$t corpus/$$t seeds/$$t -- \
	      -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	      > target/logs/$$t.log 2>&1; then \
	    tail -n 40 target/logs/$$t.log >&2; \
	    echo "error: fuzz target $$t failed: crashing input in fuzz/artifacts/$$t/" >&2; exit 1; \
	  fi; \
	  grep -h 'stat::number_of_executed_units' target/logs/$$t.log | sed "s/^/fuzz: $$t /"; \
	done
	@echo "make fuzz: no crash in $(FUZZ_TARGETS)"

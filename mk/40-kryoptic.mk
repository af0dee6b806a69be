# kryoptic: a second, independent PKCS#11 soft token (issue 8, REFERENCE.md §11).
#
#   make kryoptic         build tools/kryoptic/target/release/libkryoptic_pkcs11.so (pinned 1.5.4;
#                         ~1.5 min cold on 2 cores, a no-op afterwards)
#   make test-softhsm     the HSM integration tests (+ provision e2e) against SoftHSM2 only
#   make test-kryoptic    the same tests against kryoptic only
#   make test-portability (part of `make test`) the kryoptic run + tests/portability_*.rs
#
# The wrapper crate lives outside the main workspace with its own lock file and target dir, so the
# project's CARGO_TARGET_DIR (exported by the top-level Makefile) is overridden for that build only.
KRYOPTIC_DIR := $(ROOT)/tools/kryoptic
KRYOPTIC_LIB := $(KRYOPTIC_DIR)/target/release/libkryoptic_pkcs11.so
SOFTHSM_LIB  ?= /usr/lib/softhsm/libsofthsm2.so

# The HSM test files (tests/hsm_*.rs) and the provision end-to-end test if present, as `--test` args.
HSM_TEST_ARGS = $(foreach f,$(sort $(wildcard $(ROOT)/tests/hsm_*.rs) \
                  $(wildcard $(ROOT)/tests/provision*.rs)),--test $(basename $(notdir $(f))))
PORTABILITY_TEST_ARGS = $(foreach f,$(sort $(wildcard $(ROOT)/tests/portability_*.rs)),--test $(basename $(notdir $(f))))

.PHONY: kryoptic test-softhsm test-kryoptic test-portability
kryoptic: $(KRYOPTIC_LIB)

$(KRYOPTIC_LIB): $(KRYOPTIC_DIR)/Cargo.toml $(KRYOPTIC_DIR)/Cargo.lock | deps-apt deps-rust
	@echo "building kryoptic 1.5.4 (PKCS#11 soft token) in $(KRYOPTIC_DIR)"
	cd $(KRYOPTIC_DIR) && env -u CARGO_TARGET_DIR CARGO_TARGET_DIR=$(KRYOPTIC_DIR)/target \
	  $(CARGO) build --release --locked -p kryoptic
	@test -f $@ || { echo "error: kryoptic build did not produce $@" >&2; exit 1; }
	@touch $@

test-softhsm: deps-apt deps-rust
	HSM_DEMO_TEST_MODULES=softhsm $(CARGO) test $(HSM_TEST_ARGS) $(PORTABILITY_TEST_ARGS)

test-kryoptic: deps-apt deps-rust $(KRYOPTIC_LIB)
	HSM_DEMO_TEST_MODULES=kryoptic HSM_DEMO_KRYOPTIC_LIB=$(KRYOPTIC_LIB) \
	  $(CARGO) test $(HSM_TEST_ARGS) $(PORTABILITY_TEST_ARGS)

# `make test`: the default cargo run covers SoftHSM2; this adds the kryoptic run (both modules in one
# process where a test iterates over HSM_DEMO_TEST_MODULES).
test-portability: deps-apt deps-rust $(KRYOPTIC_LIB)
	HSM_DEMO_TEST_MODULES=softhsm,kryoptic HSM_DEMO_KRYOPTIC_LIB=$(KRYOPTIC_LIB) \
	  $(CARGO) test $(PORTABILITY_TEST_ARGS)
	HSM_DEMO_TEST_MODULES=kryoptic HSM_DEMO_KRYOPTIC_LIB=$(KRYOPTIC_LIB) \
	  $(CARGO) test $(HSM_TEST_ARGS)

TEST_TARGETS += test-portability

# kryoptic: a second, independent PKCS#11 soft token.
#
#   make kryoptic         build tools/kryoptic/target/release/libkryoptic_pkcs11.so (pinned 1.5.4;
#                         ~1.5 min cold on 2 cores, a no-op afterwards)
#   make test-softhsm     the HSM integration tests (+ provision e2e) against SoftHSM2 only
#   make test-kryoptic    the same tests against kryoptic only
#   make test-portability (part of `make test`) = test-kryoptic; SoftHSM2 is covered by test-rust
#
# The wrapper crate lives outside the main workspace with its own lock file and target dir, so the
# project's CARGO_TARGET_DIR (exported by the top-level Makefile) is overridden for that build only.
KRYOPTIC_DIR := $(ROOT)/tools/kryoptic
KRYOPTIC_LIB := $(KRYOPTIC_DIR)/target/release/libkryoptic_pkcs11.so
SOFTHSM_LIB  ?= /usr/lib/softhsm/libsofthsm2.so

# The HSM test files (tests/hsm_*.rs) and the provisioning tests (tests/pca_*.rs: e2e, bad input,
# concurrency; they start the local AWS stand-in themselves from .venv), as `--test` args.
HSM_TEST_ARGS = $(foreach f,$(sort $(wildcard $(ROOT)/tests/hsm_*.rs) $(wildcard $(ROOT)/tests/pca_*.rs) \
                  $(wildcard $(ROOT)/tests/provision*.rs) $(wildcard $(ROOT)/tests/batch_e2e.rs) $(wildcard $(ROOT)/tests/batch_key_index.rs)),--test $(basename $(notdir $(f))))
PORTABILITY_TEST_ARGS = $(foreach f,$(sort $(wildcard $(ROOT)/tests/portability_*.rs)),--test $(basename $(notdir $(f))))

.PHONY: kryoptic test-softhsm test-kryoptic test-portability
kryoptic: $(KRYOPTIC_LIB)

$(KRYOPTIC_LIB): $(KRYOPTIC_DIR)/Cargo.toml $(KRYOPTIC_DIR)/Cargo.lock | deps-apt deps-rust
	@echo "building kryoptic 1.5.4 (PKCS#11 soft token) in $(KRYOPTIC_DIR)"
	cd $(KRYOPTIC_DIR) && env -u CARGO_TARGET_DIR CARGO_TARGET_DIR=$(KRYOPTIC_DIR)/target \
	  $(CARGO) build --release --locked -p kryoptic
	@test -f $@ || { echo "error: kryoptic build did not produce $@" >&2; exit 1; }
	@touch $@

test-softhsm: deps-apt deps-rust deps-py
	HSM_DEMO_TEST_MODULES=softhsm $(CARGO) test $(HSM_TEST_ARGS) $(PORTABILITY_TEST_ARGS)

test-kryoptic: deps-apt deps-rust deps-py $(KRYOPTIC_LIB)
	HSM_DEMO_TEST_MODULES=kryoptic HSM_DEMO_KRYOPTIC_LIB=$(KRYOPTIC_LIB) \
	  $(CARGO) test $(HSM_TEST_ARGS) $(PORTABILITY_TEST_ARGS)

# `make test`: test-rust (mk/20-hsm.mk) runs every test on SoftHSM2 (the default module kind);
# this runs the HSM, provision and portability tests again on kryoptic, each test with fresh tokens.
test-portability: test-kryoptic

TEST_TARGETS += test-portability

# pca module: ACM PCA issuance + DynamoDB registry.
#
#   make test-pca             the pca/provision integration tests alone (also part of test-rust)
#   make test-pca-failpoints  crash at every fault point (--features failpoints) + SIGKILL trials
#
# The tests start their own AWS stand-in (tests/common/standin.rs) and SoftHSM2 tokens in temp dirs.

.PHONY: test-pca test-pca-failpoints

test-pca: deps-apt deps-rust deps-py
	$(CARGO) test $(foreach f,$(sort $(wildcard $(ROOT)/tests/pca_*.rs)),--test $(basename $(notdir $(f))))

test-pca-failpoints: deps-apt deps-rust deps-py
	$(CARGO) test --features failpoints --test pca_crash --test pca_revoke_crash

TEST_TARGETS += test-pca-failpoints

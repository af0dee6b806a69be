# Batch provisioning: `provision --manifest`.
#
#   make test-batch         the batch tests alone (they are also part of test-rust; batch_e2e also
#                           runs on kryoptic in test-kryoptic): fleet e2e, bad manifests, retry-failed,
#                           Ctrl-C, 3 processes, 20 SIGKILLs x 200 devices with and without faults
#   make batch-hsm-scaling  HSM keygen+CSR rate with 1/2/4 worker threads vs 2/4 processes
#                           (release build; BATCH_HSM_DEVICES=200)

.PHONY: test-batch batch-hsm-scaling

test-batch: deps-apt deps-rust deps-py
	$(CARGO) test --test batch_e2e --test batch_crash --test batch_faults

batch-hsm-scaling: deps-apt deps-rust
	$(CARGO) test --release --test batch_hsm_scaling -- --ignored --nocapture

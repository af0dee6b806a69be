# HSM core: the spec's demo, the Rust test suite, the HSM benchmark.
#
#   make demo       the spec's key-lifecycle flow on a project-local SoftHSM2 token
#                   (.tokens/ + .run/softhsm2.conf; never the system token directory), then the optional
#                   AWS part (infra/deploy/demo_aws.sh: stack outputs -> hsm-demo provision; skipped if no python3)
#   make test-rust  `cargo test`: every unit and integration test (part of `make test`)
#   make test-ceremony-failpoints  SIGKILL the key ceremony (and its CRL step) at each kill point,
#                   --recover, rerun; a key generation failing half-way leaves nothing
#                   (--features failpoints; part of `make test`)
#   make bench-hsm  sign --batch vs a raw C_Sign loop, one `hsm-demo sign` vs one `pkcs11-tool --sign`
#                   -> docs/benchmarks.md (part of `make bench`)

.PHONY: demo test-rust test-ceremony-failpoints bench-hsm hsm-build hsm-build-release

hsm-build: deps-apt deps-rust
	$(CARGO) build --bin hsm-demo

hsm-build-release: deps-apt deps-rust
	$(CARGO) build --release --bin hsm-demo --example csign_loop

demo: hsm-build
	@ROOT=$(ROOT) BIN=$(BIN_DEBUG) AWS_HOST=$(AWS_HOST) AWS_PORT=$(AWS_PORT) bash $(ROOT)/scripts/demo.sh

test-rust: deps-apt deps-rust
	$(CARGO) test

bench-hsm: hsm-build-release
	@ROOT=$(ROOT) BIN=$(BIN_RELEASE) CSIGN=$(CARGO_TARGET_DIR)/release/examples/csign_loop \
	  bash $(ROOT)/scripts/bench-hsm.sh

test-ceremony-failpoints: deps-apt deps-rust
	$(CARGO) test --features failpoints --test hsm_ceremony_recover --test ceremony_crl --test keygen_library

TEST_TARGETS  += test-rust test-ceremony-failpoints
BENCH_TARGETS += bench-hsm

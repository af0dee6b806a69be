# The design document (docs/acm-pca-design.md) and its live walkthrough.
#
#   make walkthrough   §6 of the design document run live against the local AWS stand-in (make aws-up):
#                      a CA hierarchy from infra/ under a stack and table of its own, a fresh SoftHSM2
#                      token in a temporary directory; prints each step's §6 heading, command, result
#                      (openssl certificate fields, the registry item) and the IAM statement that allows it;
#                      removes what it created.
#   make docs-check    tests/design_doc.rs: every `hsm-demo …` command quoted in the document exists with
#                      the flags shown (real --help), every cited test exists (also part of `cargo test`).

.PHONY: walkthrough docs-check

walkthrough: hsm-build aws-up deps-py
	@AWS_ENDPOINT_URL=http://$(AWS_HOST):$(AWS_PORT) ROOT=$(ROOT) BIN=$(BIN_DEBUG) PY=$(PY) \
	  bash $(ROOT)/scripts/walkthrough.sh

docs-check: deps-rust
	$(CARGO) test --test design_doc

# Mutation testing (cargo-mutants) of the modules that carry guarantees -> docs/mutants.md.
#
#   make mutants                 every module (scripts/mutants.sh lists them with their tests)
#   make mutants MUTANTS="token pin"   a subset
#   make mutants-deps            cargo-mutants from crates.io
#
# Not part of `make test`: each mutant rebuilds the crate and runs its tests (long on 2 CPUs).
# Run it before resolving work that touches those modules. --in-place: needs a clean src/.
MUTANTS ?=

.PHONY: mutants mutants-deps
mutants-deps: deps-rust
	@command -v cargo-mutants >/dev/null || $(CARGO) install cargo-mutants --locked

mutants: mutants-deps deps-py
	@ROOT=$(ROOT) bash $(ROOT)/scripts/mutants.sh $(MUTANTS)

# Installs what the project needs on a fresh Debian 12 machine. Idempotent and quiet when done.
APT_PACKAGES := softhsm2 opensc openssl libengine-pkcs11-openssl libssl-dev pkg-config \
                libclang-dev libsqlite3-dev time groff-base hyperfine
APT_STAMP    := $(RUN_DIR)/apt.stamp

.PHONY: deps deps-apt deps-rust deps-py
deps: deps-apt deps-rust deps-py

deps-apt: $(APT_STAMP)
$(APT_STAMP):
	@mkdir -p $(RUN_DIR)
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
	    || { echo "error: apt-get install$$missing failed" >&2; exit 1; }; \
	fi
	@touch $@

deps-rust:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found: install Rust (rustup) >= 1.94" >&2; exit 1; }

# One recipe for every Python venv of the project (this one, .venv-infra, .venv-checkov, .venv-awscli):
# $(call make-venv,<venv dir>,<requirements file>) creates the venv, installs the requirements into
# it and touches the target (its stamp file).
define make-venv
	@command -v python3 >/dev/null || { echo "error: python3 not found (need Python >= 3.10)" >&2; exit 1; }
	@python3 -m venv $(1) || { echo "error: python3 -m venv $(1) failed (install python3-venv)" >&2; exit 1; }
	@$(1)/bin/pip install -q --disable-pip-version-check -r $(2) \
	  || { echo "error: pip install -r $(2) into $(1) failed" >&2; exit 1; }
	@touch $@
endef

# Python venv for the AWS stand-in, the IaC linters and the stand-in's tests.
deps-py: $(VENV)/.stamp
$(VENV)/.stamp: requirements.txt
	$(call make-venv,$(VENV),requirements.txt)

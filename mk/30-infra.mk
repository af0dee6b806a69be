# infra/: CloudFormation for the CA hierarchy, its gate and its deployment into the local stand-in.
#
#   make infra-check     cfn-lint + checkov (offline, custom checks) + cfn-guard + broken templates + pytest
#   make infra-deploy    deploy the stack into $AWS_ENDPOINT_URL, default :4566 (INFRA_ROOT_MODE=PCA|OFFLINE), check it
#   make infra-destroy   delete the stack (and, against the local stand-in, the retained registry table)
#   make infra-e2e       both root modes (OFFLINE via the HSM key ceremony): deploy, check, provision a device
#                        certificate and verify it to the root, second deploy (update), destroy (in make test)
INFRA_DIR        := $(ROOT)/infra
INFRA_VENV       := $(ROOT)/.venv-infra
CHECKOV_VENV     := $(ROOT)/.venv-checkov
INFRA_PY         := $(INFRA_VENV)/bin/python
INFRA_TEMPLATES  := $(INFRA_DIR)/templates/hierarchy.yaml
INFRA_STACK      ?= hsm-demo-pki
INFRA_ROOT_MODE  ?= PCA
INFRA_OUTPUTS    ?= $(RUN_DIR)/infra-outputs.json
# The endpoint of the deployment targets only (not exported to every make target: the Rust tests
# under `make test` start their own stand-ins and must not see it).
INFRA_ENDPOINT   := $(or $(AWS_ENDPOINT_URL),http://$(AWS_HOST):$(AWS_PORT))
infra-deploy infra-destroy infra-e2e: export AWS_ENDPOINT_URL = $(INFRA_ENDPOINT)

.PHONY: infra-deps infra-check infra-deploy infra-destroy infra-e2e
TEST_TARGETS += infra-check

infra-deps: $(INFRA_VENV)/.stamp $(CHECKOV_VENV)/.stamp

$(INFRA_VENV)/.stamp: $(INFRA_DIR)/requirements-lint.txt
	$(call make-venv,$(INFRA_VENV),$<)

$(CHECKOV_VENV)/.stamp: $(INFRA_DIR)/requirements-checkov.txt
	$(call make-venv,$(CHECKOV_VENV),$<)

infra-check: infra-deps
	@start=$$(date +%s); \
	echo "== cfn-lint"; $(INFRA_VENV)/bin/cfn-lint $(INFRA_TEMPLATES) && echo "cfn-lint: clean"; \
	echo "== cfn-guard (templates, then deliberately broken templates)"; \
	$(INFRA_PY) $(INFRA_DIR)/tools/run_guard.py $(INFRA_TEMPLATES) --broken $(INFRA_DIR)/tests/broken/guard; \
	echo "== checkov (offline; built-in + custom checks, then deliberately broken templates)"; \
	$(INFRA_PY) $(INFRA_DIR)/tools/run_checkov.py --checkov $(CHECKOV_VENV)/bin/checkov $(INFRA_TEMPLATES) \
	  --broken $(INFRA_DIR)/tests/broken/checkov; \
	echo "== pytest infra/tests (parameters, policy)"; \
	$(INFRA_PY) -m pytest -q -p no:cacheprovider $(INFRA_DIR)/tests; \
	echo "infra-check: passed in $$(( $$(date +%s) - start )) s"

# --- deployment (needs the local AWS stand-in of mk/10-aws.mk, or a real account via AWS_ENDPOINT_URL=) ---
# OFFLINE mode runs the key ceremony and sign-intermediate with the debug hsm-demo.
infra-deploy: aws-up deps-py $(if $(filter OFFLINE,$(INFRA_ROOT_MODE)),hsm-build)
	@mkdir -p $(RUN_DIR)
	@$(INFRA_DIR)/deploy/deploy.sh $(INFRA_ROOT_MODE)

infra-destroy: deps-py
	@$(PY) $(INFRA_DIR)/deploy/stack.py destroy --stack $(INFRA_STACK) --local-registry-cleanup

# Both root modes (OFFLINE through a real SoftHSM2 root key from hsm-demo key-ceremony), a device
# certificate from `hsm-demo provision` verified up to the root; own stacks, tables and temp token store.
# INFRA_OFFLINE_SIGNER=openssl: a throw-away on-disk root instead of the HSM (template phases only).
infra-e2e: hsm-build aws-up deps-py
	@HSM_DEMO=$(BIN_DEBUG) PY=$(PY) $(INFRA_DIR)/deploy/e2e.sh
TEST_TARGETS += infra-e2e

# The local AWS stand-in (moto + our plugin, standin/) on 127.0.0.1:4566, LocalStack, and their tests.
#   make aws-up | aws-down | aws-reset   start, stop, empty the stand-in on 127.0.0.1:4566
#   make localstack-up   LocalStack instead (needs Docker and a LocalStack account for ACM PCA)
#   make test-standin    the stand-in's own pytest suite (part of `make test`)
#   make check-testcontainers   the testcontainers (LocalStack) test compiles (part of `make test`)
AWS_HOST        ?= 127.0.0.1
AWS_PORT        ?= 4566
STANDIN_PIDFILE := $(RUN_DIR)/standin.pid
STANDIN_LOG     := $(RUN_DIR)/standin.log
STANDIN_CTL      = PYTHONPATH=$(ROOT)/standin $(PY) -m hsm_demo_standin.ctl --host $(AWS_HOST) --port $(AWS_PORT) \
                   --pidfile $(STANDIN_PIDFILE) --log $(STANDIN_LOG)

.PHONY: aws-up aws-down aws-reset localstack-up test-standin check-testcontainers

aws-up: deps-py
	@mkdir -p $(RUN_DIR)
	@$(STANDIN_CTL) up

aws-down:
	@if [ -x "$(PY)" ]; then $(STANDIN_CTL) down; \
	 else echo "aws-down: no venv, so no stand-in was started by aws-up"; fi

aws-reset: deps-py
	@$(STANDIN_CTL) reset

localstack-up:
	@bash $(ROOT)/scripts/aws-localstack-up.sh $(AWS_HOST) $(AWS_PORT)

# The stand-in's own tests: each starts its own server on a free port (no need for aws-up).
test-standin: deps-py deps-apt
	@cd $(ROOT)/standin && $(PY) -m pytest -q -p no:cacheprovider
	@echo "== the same tests with the stand-in's CPU-only patches off (STANDIN_NO_SPEEDUPS=1)"
	@cd $(ROOT)/standin && STANDIN_TEST_NO_SPEEDUPS=1 $(PY) -m pytest -q -p no:cacheprovider
TEST_TARGETS += test-standin

# The testcontainers fixture cannot run here (no Docker engine): CI at least compiles it.
check-testcontainers: deps-rust
	$(CARGO) check --tests --features testcontainers
TEST_TARGETS += check-testcontainers

# streamflow — developer entry points. `make test` is what CI runs (via .ci/run).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK := deploy/local/stack
STACK_ENV := deploy/local/.run/stack.env
# the secured stack (SASL_SSL, SCRAM, ACLs) of tests/integration/test_security.py
SECURE_ENV := deploy/local/.run-secure/stack.env
# set STREAMFLOW_TEST_BOOTSTRAP_SERVERS (and ..._SCHEMA_REGISTRY_URL) to use an existing cluster
EXTERNAL := $(STREAMFLOW_TEST_BOOTSTRAP_SERVERS)
# the dashboard's graph library (Cytoscape.js + dagre), pinned by package-lock.json, installed by npm
DASH_ASSETS := streamflow/dashboard/assets
ENGINE := deploy/containers/engine.sh
IMAGES := deploy/containers/images.sh
# the integration tests `make test-containers` runs against containerised Kafka + registry
CONTAINER_TESTS := tests/containers \
	tests/integration/test_smoke_stack.py \
	"tests/integration/test_avro_pipeline.py::test_confluent_avro_in_evolving_schema_out_to_confluent_reader_with_poison_to_dlq" \
	"tests/integration/test_eos.py::test_exactly_once_survives_repeated_sigkill"

.PHONY: help venv graphviz chromium dashboard-assets test unit integration lint docs demo bench \
	stack-up stack-down secure-stack-up secure-stack-down clean containers-up containers-down images \
	test-containers conformance conformance-build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,docs]'
	@touch $@

venv: $(BIN)/.installed dashboard-assets ## create .venv and install streamflow with its test and docs extras (and the dashboard's graph library)

graphviz: ## install Graphviz (for describe --format png|svg) when missing and we are root
	@command -v dot >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || \
	  echo "note: Graphviz not installed; describe --format png|svg needs it (apt-get install graphviz)"; }

chromium: ## install Chromium (the dashboard's browser test drives it) when missing and we are root
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "note: Chromium not installed; the dashboard's browser test needs it (apt-get install chromium)"; }

dashboard-assets: $(DASH_ASSETS)/node_modules/.installed ## install the dashboard's graph library from npm (npm ci, pinned)

$(DASH_ASSETS)/node_modules/.installed: $(DASH_ASSETS)/package.json $(DASH_ASSETS)/package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq npm >/dev/null); } || \
	  { echo "npm is needed for the dashboard's graph library (apt-get install npm)"; exit 1; }
	npm ci --prefix $(DASH_ASSETS) --no-audit --no-fund --loglevel=error
	@touch $@

stack-up: ## start the local Kafka + schema registry (deploy/local)
	$(STACK) up

stack-down: ## stop the local stack
	$(STACK) down

secure-stack-up: ## start the secured local Kafka (SASL_SSL, SCRAM users admin/app, ACLs enforced)
	$(STACK) up --secure

secure-stack-down: ## stop the secured local Kafka
	$(STACK) down --secure

test: venv graphviz chromium docs conformance-build ## strict docs build, then the whole suite (unit + integration) against a real broker and registry
	@set -euo pipefail; \
	started=0; secure_started=0; \
	if [ -z "$(EXTERNAL)" ]; then \
	  if ! $(STACK) status >/dev/null 2>&1; then $(STACK) up; started=1; fi; \
	  set -a; . $(STACK_ENV); set +a; \
	  export STREAMFLOW_TEST_BOOTSTRAP_SERVERS=$$STREAMFLOW_BOOTSTRAP_SERVERS; \
	  export STREAMFLOW_TEST_SCHEMA_REGISTRY_URL=$$STREAMFLOW_SCHEMA_REGISTRY_URL; \
	fi; \
	if [ -z "$${STREAMFLOW_TEST_SECURE_ENV:-}" ]; then \
	  if ! $(STACK) status --secure >/dev/null 2>&1; then $(STACK) up --secure >/dev/null; secure_started=1; fi; \
	  export STREAMFLOW_TEST_SECURE_ENV=$(CURDIR)/$(SECURE_ENV); \
	fi; \
	rc=0; STREAMFLOW_REQUIRE_INTEGRATION=1 $(BIN)/python -m pytest tests streamflow -q --ignore=tests/containers $(PYTEST_ARGS) || rc=$$?; \
	if [ $$started = 1 ]; then $(STACK) down; fi; \
	if [ $$secure_started = 1 ]; then $(STACK) down --secure; fi; \
	exit $$rc

conformance-build: venv ## fetch Kafka Streams (Maven Central, cached in ~/.m2) and compile the conformance suite's Java side
	$(BIN)/python -m tests.conformance.kstreams build

conformance: conformance-build ## the same inputs through Kafka Streams' TopologyTestDriver and streamflow's, outputs compared
	$(BIN)/python -m pytest tests/conformance -q $(PYTEST_ARGS)

unit: venv ## run the unit tests and the doctests of streamflow/ (no broker)
	$(BIN)/python -m pytest tests/unit streamflow -q $(PYTEST_ARGS)

lint: venv ## ruff on the whole tree, mypy --strict on streamflow/
	$(BIN)/ruff check streamflow tests bench deploy topologies docs
	$(BIN)/mypy --strict streamflow

docs: venv ## build the documentation site into build/site (mkdocs --strict: warnings are errors)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

demo: venv ## run the example topology on generated data (Ctrl-C stops it)
	@$(STACK) up
	@set -a; . $(STACK_ENV); set +a; $(BIN)/python deploy/local/demo.py $(DEMO_ARGS)

bench: venv ## benchmark against raw confluent-kafka, Quix Streams and Faust
	@$(STACK) up
	bash bench/setup_peers.sh
	@set -a; . $(STACK_ENV); set +a; $(BIN)/python bench/run.py $(BENCH_ARGS)

containers-up: dashboard-assets ## a Docker engine (the one that answers, else a private dockerd) and the images
	$(ENGINE) up
	@eval "$$($(ENGINE) env)"; $(IMAGES) all

containers-down: ## stop the private dockerd started by containers-up (and its containers)
	$(ENGINE) down

images: dashboard-assets ## build the JRE, Python, Kafka, Apicurio and streamflow images here (cached by content; the app image carries the dashboard's graph library)
	$(ENGINE) up
	@eval "$$($(ENGINE) env)"; $(IMAGES) all

test-containers: venv ## smoke, Avro and exactly-once tests on containerised Kafka + registry, and the compose test
	@set -euo pipefail; \
	started=0; $(ENGINE) status >/dev/null 2>&1 || started=1; \
	$(ENGINE) up; eval "$$($(ENGINE) env)"; \
	rc=0; $(IMAGES) all || rc=$$?; \
	if [ $$rc = 0 ]; then \
	  env -u STREAMFLOW_TEST_BOOTSTRAP_SERVERS -u STREAMFLOW_TEST_SCHEMA_REGISTRY_URL \
	    STREAMFLOW_TEST_CLUSTER=docker STREAMFLOW_REQUIRE_INTEGRATION=1 \
	    $(BIN)/python -m pytest $(CONTAINER_TESTS) -q -p no:cacheprovider $(PYTEST_ARGS) || rc=$$?; \
	fi; \
	ids=$$(docker ps -aq --filter label=dev.streamflow.test); \
	if [ -n "$$ids" ]; then docker rm -f -v $$ids >/dev/null; fi; \
	if [ $$started = 1 ]; then $(ENGINE) down; fi; \
	exit $$rc

clean: ## remove the virtualenv and caches (not the stack's data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/conformance/build

# bluegreen-operator: the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONTROLPLANE := $(PY) tests/cluster/controlplane.py

## demo: start the local control plane (built once), then release v1, v2 and revert v2 of a real web app under load.
demo: $(STAMP)
	@set -eo pipefail; $(CONTROLPLANE) up | tee .cluster-env; \
	  eval "$$(tail -n 1 .cluster-env)"; $(PY) demo/demo.py

## demo-migrations: a throwaway PostgreSQL and the local control plane (stopped again at the end if this
## started it), then a column renamed in three releases (expand, switch, contract) under reads and writes.
demo-migrations: $(STAMP)
	@bash tests/servers/install-deps.sh
	@set -eo pipefail; if $(CONTROLPLANE) status >/dev/null 2>&1; then started=0; else started=1; fi; \
	  $(CONTROLPLANE) up | tee .cluster-env; eval "$$(tail -n 1 .cluster-env)"; \
	  code=0; $(PY) demo/migrations.py || code=$$?; \
	  if [ $$started = 1 ]; then $(CONTROLPLANE) down; fi; exit $$code

## bench: release latency, git-source scale and node pod start rate on the local control plane (benchmarks/).
bench: $(STAMP)
	@set -eo pipefail; $(CONTROLPLANE) up | tee .cluster-env; \
	  eval "$$(tail -n 1 .cluster-env)"; $(PY) benchmarks/release_latency.py && $(PY) benchmarks/git_source.py && $(PY) benchmarks/node_pods.py

## bench-scale: 1,000 releases beside their floors, API requests per idle release, RSS and CPU (benchmarks/scale.py).
## Smaller: make bench-scale SCALE_ARGS="--releases 200 --followers 100"
bench-scale: $(STAMP)
	@set -eo pipefail; $(CONTROLPLANE) up | tee .cluster-env; \
	  eval "$$(tail -n 1 .cluster-env)"; $(PY) benchmarks/scale.py $(SCALE_ARGS)

## bench-gates: the overhead of a passing HTTP pre-promotion check and the rollback time after a failing
## post-promotion check, with the real web app (benchmarks/gates.py).
bench-gates: $(STAMP)
	@set -eo pipefail; $(CONTROLPLANE) up | tee .cluster-env; \
	  eval "$$(tail -n 1 .cluster-env)"; $(PY) benchmarks/gates.py $(GATES_ARGS)

## bench-migrations: the cost of expand/contract Jobs per release (no-op Jobs vs no migrations), beside a bare Job
## on the same cluster (benchmarks/migrations.py).
bench-migrations: $(STAMP)
	@set -eo pipefail; $(CONTROLPLANE) up | tee .cluster-env; \
	  eval "$$(tail -n 1 .cluster-env)"; $(PY) benchmarks/migrations.py $(MIGRATIONS_ARGS)

.PHONY: demo demo-migrations bench bench-scale bench-gates bench-migrations image test lint unit integration e2e mutation cluster-build cluster-up cluster-down cluster-status clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## image: the operator's OCI image, built without Docker (image/build.py; needs root): build/image/oci and
## build/image/bluegreen-operator-<version>.tar (docker/podman load). The Debian base is cached per machine.
image: $(STAMP)
	$(PY) image/build.py

## test: lint, then every test (unit, integration, e2e) against the local control plane or $KUBECONFIG.
## The image is built first (fast when its cache is warm): tests/integration/test_image.py and
## tests/e2e/test_image_release.py run it.
test: $(STAMP) lint
	@bash tests/servers/install-deps.sh
	@if [ -z "$$KUBECONFIG" ]; then bash tests/cluster/build.sh; fi
	$(PY) image/build.py
	$(PY) -m pytest tests

lint: $(STAMP)
	$(VENV)/bin/ruff check operator tests benchmarks demo image
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	@bash tests/servers/install-deps.sh
	$(PY) -m pytest tests/unit

integration: $(STAMP)
	@bash tests/servers/install-deps.sh
	$(PY) -m pytest tests/integration

e2e: $(STAMP)
	$(PY) -m pytest tests/e2e

## mutation: mutmut over core/ and the controller queue, killed by tests/unit (slow; not in `test` or CI).
mutation: $(STAMP)
	@bash tests/servers/install-deps.sh
	bash tests/mutation/run.sh

## cluster-*: the local control plane (tests/cluster/): build once, start, stop.
cluster-build:
	bash tests/cluster/build.sh

cluster-up: $(STAMP)
	@$(CONTROLPLANE) up

cluster-down: $(STAMP)
	@$(CONTROLPLANE) down

cluster-status: $(STAMP)
	@$(CONTROLPLANE) status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

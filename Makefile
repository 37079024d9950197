# The README's commands. `make test` works on a fresh machine: it creates .venv,
# installs the package with its test extras, the Debian components (etcd 3.4,
# Prometheus), builds kube-apiserver once into a cache outside the repo, lints, and
# runs the whole suite.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test venv system k8s etcd etcd3 helm kind lint unit mutants bench torture fuzz e2e clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)

system:
	bash scripts/install-system.sh

k8s: venv
	bash scripts/build-k8s.sh

etcd:
	bash scripts/build-etcd.sh

helm:
	bash scripts/build-helm.sh

# python-etcd3's own venv (pure-Python protobuf); tests/client/test_python_etcd3.py also
# builds it on first use
etcd3:
	bash scripts/etcd3-venv.sh

# everything the kind e2e tests need (scripts/kind/setup.sh; cold ~30 min, warm seconds)
kind: venv
	PYTHON=$(CURDIR)/$(BIN)/python bash scripts/kind/setup.sh

demo: venv
	$(BIN)/python -m raftkv.demo

lint: venv
	$(BIN)/ruff check raftkv tests bench
	$(BIN)/mypy raftkv
	$(BIN)/lint-imports

# Each stage prints its wall time (scripts/stage.sh); pytest prints the time per test group.
# The loop-lag test measures latency, so it runs alone, before the lanes load the machine
# (right after them it read 0.10-0.13 s p99 where a quiet machine reads 0.035 s).
STAGE := bash scripts/stage.sh
test:
	$(STAGE) venv $(MAKE) --no-print-directory venv
	$(STAGE) system $(MAKE) --no-print-directory system
	$(STAGE) k8s $(MAKE) --no-print-directory k8s
	$(STAGE) etcd $(MAKE) --no-print-directory etcd
	$(STAGE) helm $(MAKE) --no-print-directory helm
	$(STAGE) etcd3 $(MAKE) --no-print-directory etcd3
	$(STAGE) kind $(MAKE) --no-print-directory kind
	$(STAGE) lint $(MAKE) --no-print-directory lint
	$(STAGE) looplag $(BIN)/pytest -m isolated -rP $(PYTEST_ARGS)
	$(STAGE) pytest bash scripts/pytest-lanes.sh $(BIN)/pytest --durations=30 $(PYTEST_ARGS)

unit: venv
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

mutants: venv
	$(BIN)/python -m tests.raft.mutants
	$(BIN)/python -m tests.paxos.mutants

bench: venv
	$(BIN)/python bench/raft_core.py
	$(BIN)/python bench/storage.py --seconds 3

torture: venv system
	$(BIN)/python -m tests.e2e.history.torture

# long fuzzing with fresh seeds (FUZZ_BUDGET seconds); `make test` runs fixed seeds only
FUZZ_BUDGET ?= 1800
fuzz: venv etcd
	$(BIN)/python -m tests.fuzz --budget $(FUZZ_BUDGET)

# The operator in a real kind cluster (tests/e2e/kind; the kind fixture builds or finds
# its cached infrastructure and skips without it, unless RAFTKV_REQUIRE_KIND=1).
e2e: venv
	$(BIN)/pytest tests/e2e/kind -m kind -x -v $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

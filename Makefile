# fastbert developer commands. `make help` lists them.
# CI (`bash .ci/run`) runs the same lint commands and the same test command, but
# against a non-editable install of the wheel in its own virtual environment.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

# The project's virtual environment, if there is one; otherwise whatever is on PATH.
VENV ?= .venv
PYTHON := $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,python3)
PYTEST := $(if $(wildcard $(VENV)/bin/pytest),$(VENV)/bin/pytest,pytest)
LINT_IMPORTS := $(if $(wildcard $(VENV)/bin/lint-imports),$(VENV)/bin/lint-imports,lint-imports)
export PYO3_PYTHON := $(abspath $(PYTHON))
# Other engineers share the checkout: serialise builds.
LOCK := flock /tmp/fastbert-build.lock
# Python sources to lint (git does not keep an empty benches/). kernels/ is the source of fastbert.kernels.
PY_DIRS := $(wildcard python tests benches kernels build_backend tools)

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build-dev
build-dev: ## Copy kernels/ into the package, build the extension (release) and install it editable (VENV, default .venv)
	$(PYTHON) -m build_backend.sync
	$(LOCK) $(PYTHON) -m maturin develop --release

.PHONY: lint
lint: lint-rust lint-python lint-layers typecheck stub-check ## All checks CI runs before the tests

.PHONY: lint-rust
lint-rust: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all --check
	cargo clippy --all-targets --locked -- -D warnings

.PHONY: lint-python
lint-python: ## ruff check and ruff format --check
	$(PYTHON) -m ruff check $(PY_DIRS)
	$(PYTHON) -m ruff format --check $(PY_DIRS)

.PHONY: lint-layers
lint-layers: ## The layers import only downward, no import cycles (import-linter; ARCHITECTURE.md)
	$(PYTHON) -m build_backend.sync
	PYTHONPATH=python $(LINT_IMPORTS) --no-cache

.PHONY: typecheck
typecheck: ## mypy (strict) over python/fastbert and kernels/ (checked as fastbert.kernels)
	$(PYTHON) -m build_backend.sync
	$(PYTHON) -m mypy -p fastbert

.PHONY: stub-check
stub-check: ## Check python/fastbert/_core.pyi against the compiled module
	$(PYTEST) -q tests/test_stub.py

.PHONY: format
format: ## Format Rust and Python sources in place
	cargo fmt --all
	$(PYTHON) -m ruff check --fix $(PY_DIRS)
	$(PYTHON) -m ruff format $(PY_DIRS)

.PHONY: test
test: ## The Python test suite (what CI runs: pytest)
	$(PYTEST)

.PHONY: test-rust
test-rust: ## The Rust core's unit tests
	cargo test -p fastbert-core --locked

# One script per claim (benches/bench_*.py). The drivers are left out: run_all.py repeats three
# of them, gpu_session.py and sweep_attention.py are the lent GPU's job (kernels/README.md).
BENCHES := $(sort $(wildcard benches/bench_*.py))

.PHONY: bench
bench: ## Run every benchmark script, benches/bench_*.py (not part of the tests; GPU ones skip without CUDA)
	@for s in $(BENCHES); do echo "== $$s"; $(PYTHON) "$$s" || exit $$?; done

.PHONY: ci
ci: ## Run the whole CI script (.ci/run) here
	bash .ci/run

.PHONY: clean
clean: ## Remove build outputs and caches (keeps the venv)
	cargo clean
	rm -rf dist .pytest_cache .ruff_cache .hypothesis
	rm -f python/fastbert/_core*.so
	find $(PY_DIRS) -name __pycache__ -type d -prune -exec rm -rf {} +
